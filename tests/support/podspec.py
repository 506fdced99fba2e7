"""A Job whose pod is shaped like pman's (stage-in, processor, publish), built with pman's
own builders, for the publisher's tests: the processor is a shell script."""

from __future__ import annotations

from typing import Any

from pman import jobspec
from pman.pod import PROCESSOR

Obj = dict[str, Any]
PUBLISHER_IMAGE = "fnndsc/publisher"


def job_pod_manifest(
    name: str,
    *,
    secret: str,
    container: str,
    processor_script: str,
    publish_args: list[str] | None = None,
    stage_in: bool = True,
) -> Obj:
    """A Job whose pod stages in ``<container>/in``, runs ``processor_script`` in sh, and
    publishes to ``<container>/out`` (``--json`` and ``publish_args`` added)."""
    processor = {
        "name": PROCESSOR,
        "image": "busybox:1.36",
        "command": ["sh", "-c", processor_script],
        "volumeMounts": [jobspec.share_mount()],
    }
    publish = jobspec.publish_container(
        PUBLISHER_IMAGE, f"swift://{container}/out", options=["--json", *(publish_args or [])]
    )
    spec: Obj = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "serviceAccountName": "pman-publisher",
        "containers": [processor, publish],
        "volumes": [
            jobspec.share_volume(),
            jobspec.credentials_volume(secret),
            jobspec.token_volume(),
        ],
    }
    if stage_in:
        spec["initContainers"] = [
            jobspec.stage_in_container(PUBLISHER_IMAGE, f"swift://{container}/in")
        ]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"backoffLimit": 0, "template": {"spec": spec}},
    }
