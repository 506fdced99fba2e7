"""v1 Events about pods and Jobs, as the kubelet and the job controller record them."""

from __future__ import annotations

import logging
import secrets
from typing import Any

from localcluster.apiserver import errors, resources
from localcluster.apiserver.lifecycle import Lifecycle
from localcluster.apiserver.meta import timestamp

log = logging.getLogger("localcluster.events")

NODE_NAME = "localcluster"


class EventRecorder:
    def __init__(self, lifecycle: Lifecycle) -> None:
        self._lifecycle = lifecycle

    def record(
        self,
        involved: dict[str, Any],
        reason: str,
        message: str,
        *,
        warning: bool = False,
        component: str = "kubelet",
        field_path: str = "",
    ) -> None:
        meta = involved["metadata"]
        now = timestamp()
        ref = {
            "kind": involved.get("kind", ""),
            "namespace": meta.get("namespace", ""),
            "name": meta["name"],
            "uid": meta.get("uid", ""),
            "apiVersion": involved.get("apiVersion", ""),
            "resourceVersion": meta.get("resourceVersion", ""),
        }
        if field_path:
            ref["fieldPath"] = field_path
        event = {
            "metadata": {"name": f"{meta['name']}.{secrets.token_hex(8)}"},
            "involvedObject": ref,
            "reason": reason,
            "message": message,
            "type": "Warning" if warning else "Normal",
            "source": {"component": component, "host": NODE_NAME},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "eventTime": None,
            "reportingComponent": component,
            "reportingInstance": NODE_NAME,
        }
        try:
            self._lifecycle.create(resources.EVENTS, event, namespace=ref["namespace"] or "default")
        except errors.ApiError as exc:
            log.debug("event not recorded: %s", exc)
