"""localcluster: a one-machine stand-in for the Kubernetes API that runs pods as processes."""

__version__ = "6.0.0"
