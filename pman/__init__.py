"""pman: runs container jobs on Kubernetes or OpenShift, with data in OpenStack Swift."""

__version__ = "6.0.0"
