"""publisher: moves job data between OpenStack Swift and a directory (the job pod's /share)."""

__version__ = "6.0.0"
