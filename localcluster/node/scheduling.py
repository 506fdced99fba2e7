"""The local cluster's one node: its labels, and whether a pod can run on it."""

from __future__ import annotations

import platform
from typing import Any

from localcluster.apiserver.events import NODE_NAME
from localcluster.apiserver.meta import parse_quantity

Obj = dict[str, Any]
STANDARD_RESOURCES = ("cpu", "memory", "ephemeral-storage")
SCHEDULING_HINT = "preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."


def node_labels() -> dict[str, str]:
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    return {
        "kubernetes.io/hostname": NODE_NAME,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": arch,
        "beta.kubernetes.io/os": "linux",
        "beta.kubernetes.io/arch": arch,
    }


def unschedulable_reason(pod: Obj) -> str | None:
    """Why the one node cannot run this pod, in the scheduler's words, or None."""
    spec = pod["spec"]
    labels = node_labels()
    if any(labels.get(k) != v for k, v in (spec.get("nodeSelector") or {}).items()):
        return (
            "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector. "
            + SCHEDULING_HINT
        )
    for container in [*spec.get("initContainers", []), *spec.get("containers", [])]:
        resources = container.get("resources") or {}
        for key, value in {
            **(resources.get("requests") or {}),
            **(resources.get("limits") or {}),
        }.items():
            if key in STANDARD_RESOURCES or key.startswith("hugepages-"):
                continue
            if parse_quantity(value) > 0:
                return f"0/1 nodes are available: 1 Insufficient {key}. {SCHEDULING_HINT}"
    return None
