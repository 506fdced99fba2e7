"""The local cluster's Kubernetes API server: requests over HTTP, the object registry and
its watches, validation and defaults, life cycle rules, authentication, audit, and TLS."""
