"""The audit log: one JSON line per API request, shaped like Kubernetes ``audit.k8s.io/v1`` events.

Each line holds who called (``user.username``: ``admin`` for the kubeconfig's token,
``system:serviceaccount:<ns>:<name>`` for a pod's token), the RBAC verb, the object
reference (apiGroup, resource, subresource, namespace, name) and the response code, so
the same checks can read a real cluster's audit log.
"""

from __future__ import annotations

import json
import threading
import uuid
from typing import IO, Any

from localcluster.apiserver.auth import Identity
from localcluster.apiserver.meta import micro_timestamp


class AuditLog:
    """Appends audit events to a file; safe to call from many threads."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._file: IO[str] | None = open(path, "a", encoding="utf-8")  # noqa: SIM115

    def record(
        self,
        *,
        identity: Identity,
        verb: str,
        uri: str,
        code: int,
        received: float,
        object_ref: dict[str, Any] | None,
        long_running: bool = False,
    ) -> None:
        event: dict[str, Any] = {
            "kind": "Event",
            "apiVersion": "audit.k8s.io/v1",
            "level": "Metadata",
            "auditID": str(uuid.uuid4()),
            # Watches and log streams are recorded when their answer starts, as the real
            # server's ResponseStarted stage.
            "stage": "ResponseStarted" if long_running else "ResponseComplete",
            "requestURI": uri,
            "verb": verb,
            "user": {"username": identity.username, "groups": list(identity.groups)},
            "responseStatus": {"metadata": {}, "code": code},
            "requestReceivedTimestamp": micro_timestamp(received),
            "stageTimestamp": micro_timestamp(),
        }
        if object_ref is not None:
            event["objectRef"] = object_ref
        line = json.dumps(event, separators=(",", ":")) + "\n"
        with self._lock:
            if self._file is not None:
                self._file.write(line)
                self._file.flush()

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
