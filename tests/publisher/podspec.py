"""A job pod shaped like pman's (stage-in, processor, publish) for the publisher's tests."""

from __future__ import annotations

import secrets
from typing import Any

Obj = dict[str, Any]
TOKEN_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
CREDENTIALS = "/etc/swift/swift-credentials.cfg"


def unique_name(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def job_pod_manifest(
    name: str,
    *,
    secret: str,
    container: str,
    processor_script: str,
    publish_args: list[str] | None = None,
    stage_in: bool = True,
) -> Obj:
    """A Job whose pod stages in, runs `processor_script` in sh, and publishes."""
    share = {"name": "share", "mountPath": "/share"}
    creds = {"name": "swift-credentials", "mountPath": "/etc/swift", "readOnly": True}
    token = {"name": "kube-api-access", "mountPath": TOKEN_DIR, "readOnly": True}
    stage = {
        "name": "stage-in",
        "image": "fnndsc/publisher",
        "command": [
            "publisher",
            "download",
            "--credentials",
            CREDENTIALS,
            f"swift://{container}/in",
            "/share/incoming",
        ],
        "volumeMounts": [share, creds],
    }
    processor = {
        "name": "processor",
        "image": "busybox:1.36",
        "command": ["sh", "-c", processor_script],
        "volumeMounts": [share],
    }
    publish = {
        "name": "publish",
        "image": "fnndsc/publisher",
        "command": [
            "publisher",
            "publish",
            "--wait-container",
            "processor",
            "--json",
            "--credentials",
            CREDENTIALS,
            *(publish_args or []),
            "/share/outgoing",
            f"swift://{container}/out",
        ],
        "env": [
            _field_env("POD_NAME", "metadata.name"),
            _field_env("POD_NAMESPACE", "metadata.namespace"),
        ],
        "volumeMounts": [share, creds, token],
    }
    spec: Obj = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "serviceAccountName": "pman-publisher",
        "containers": [processor, publish],
        "volumes": [
            {"name": "share", "emptyDir": {}},
            {"name": "swift-credentials", "secret": {"secretName": secret}},
            _token_volume(),
        ],
    }
    if stage_in:
        spec["initContainers"] = [stage]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"backoffLimit": 0, "template": {"spec": spec}},
    }


def _field_env(name: str, path: str) -> Obj:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def _token_volume() -> Obj:
    return {
        "name": "kube-api-access",
        "projected": {
            "sources": [
                {"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}},
                {
                    "configMap": {
                        "name": "kube-root-ca.crt",
                        "items": [{"key": "ca.crt", "path": "ca.crt"}],
                    }
                },
                {
                    "downwardAPI": {
                        "items": [
                            {"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}
                        ]
                    }
                },
            ]
        },
    }
