"""localcluster: a one-machine stand-in for the Kubernetes API that runs pods as processes.

``LocalCluster`` (in ``localcluster.cluster``) is the in-process API; the ``localcluster``
command serves it. See README.md for what it implements and where it differs from a real
cluster.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "6.0.0"

if TYPE_CHECKING:
    from localcluster.cluster import LocalCluster


def __getattr__(name: str) -> Any:
    # Imported lazily so that `localcluster swift` does not load the whole cluster.
    if name == "LocalCluster":
        from localcluster.cluster import LocalCluster

        return LocalCluster
    raise AttributeError(name)


__all__ = ["LocalCluster"]
