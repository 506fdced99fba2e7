"""Helpers for the publisher's tests: run the real CLI against the real Swift server."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import kubernetes
import pytest

from devstack.swiftaio import SwiftAIO
from tests.support.names import unique_name
from tests.support.publisher import FILES, processor_ended
from tests.support.trees import write_tree
from tests.support.waiting import eventually


@pytest.fixture
def swift_env(swift_server: SwiftAIO) -> dict[str, str]:
    """ST_* variables for the session's Swift server."""
    return swift_server.environment()


@pytest.fixture(scope="module")
def core(kube_cluster):
    with kube_cluster.api_client() as api:
        yield kubernetes.client.CoreV1Api(api)


@pytest.fixture(scope="module")
def batch(kube_cluster):
    with kube_cluster.api_client() as api:
        yield kubernetes.client.BatchV1Api(api)


@pytest.fixture
def credentials_secret(core, kube_cluster, swift_server):
    """A Secret holding a swift-credentials.cfg for the test Swift server."""
    name = unique_name("swift-credentials")
    text = (
        f"[AUTHORIZATION]\nosAuthUrl = {swift_server.auth_url}\n"
        f"username = {swift_server.user}\npassword = {swift_server.key}\n"
    )
    body = {"metadata": {"name": name}, "stringData": {"swift-credentials.cfg": text}}
    core.create_namespaced_secret(kube_cluster.namespace, body)
    yield name
    core.delete_namespaced_secret(name, kube_cluster.namespace)


@pytest.fixture
def jobs(batch, kube_cluster):
    """Create Jobs from manifests; they are deleted again after the test."""
    created = []

    def create(manifest: dict) -> str:
        batch.create_namespaced_job(kube_cluster.namespace, manifest)
        created.append(manifest["metadata"]["name"])
        return manifest["metadata"]["name"]

    yield create
    for name in created:
        with contextlib.suppress(kubernetes.client.exceptions.ApiException):  # already gone
            batch.delete_namespaced_job(
                name, kube_cluster.namespace, propagation_policy="Background"
            )


@pytest.fixture
def job_pod(jobs, core, kube_cluster):
    """Start a Job running one pod of this spec; its pod's name once `ready(pod)` holds."""

    def start(prefix: str, spec: dict, ready: Callable[[Any], bool] = lambda pod: True) -> str:
        name = jobs(
            {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": {"name": unique_name(prefix)},
                "spec": {"backoffLimit": 0, "template": {"spec": spec}},
            }
        )

        def ready_pod() -> str | None:
            pods = core.list_namespaced_pod(
                kube_cluster.namespace, label_selector=f"job-name={name}"
            ).items
            return pods[0].metadata.name if pods and ready(pods[0]) else None

        return eventually(ready_pod, timeout=30, what=f"a ready pod of {name}")

    return start


@pytest.fixture
def many_files(tmp_path):
    return write_tree(
        tmp_path / "out", {f"f{i:04d}": bytes([i % 256]) * 20_000 for i in range(FILES)}
    )


@pytest.fixture
def ended_processor(job_pod):
    """A running pod whose container `processor` has already ended; returns the pod name."""

    def start(grace: int) -> str:
        spec = {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": grace,
            "containers": [
                {"name": "processor", "image": "busybox:1.36", "command": ["true"]},
                {"name": "other", "image": "busybox:1.36", "command": ["sleep", "300"]},
            ],
        }
        return job_pod("ended", spec, processor_ended)

    return start
