"""Helpers for the publisher's tests: run the real CLI against the real Swift server."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import kubernetes
import pytest
from swiftclient.exceptions import ClientException

from devstack.swiftaio import SwiftAIO
from tests.trees import write_tree

from .podspec import unique_name

PUBLISHER = [sys.executable, "-m", "publisher"]


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The test process environment without any Swift/OpenStack/Kubernetes settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ST_", "OS_", "KUBE", "POD_"))}
    env.update(extra or {})
    return env


def run_publisher(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> Run:
    """Run `python -m publisher ARGS` and return its exit code and output."""
    done = subprocess.run(
        [*PUBLISHER, *args],
        env=clean_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Run(done.returncode, done.stdout, done.stderr)


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
        deadline = time.monotonic() + 30
        while True:
            pods = core.list_namespaced_pod(
                kube_cluster.namespace, label_selector=f"job-name={name}"
            ).items
            if pods and ready(pods[0]):
                return pods[0].metadata.name
            assert time.monotonic() < deadline, f"no pod of {name} got ready"
            time.sleep(0.1)

    return start


FILES = 400
"""How many files `many_files` holds: enough for a transfer to be stopped half-way."""


@pytest.fixture
def many_files(tmp_path):
    return write_tree(
        tmp_path / "out", {f"f{i:04d}": bytes([i % 256]) * 20_000 for i in range(FILES)}
    )


def start_publisher(*args: str, env: dict[str, str]) -> subprocess.Popen:
    """`python -m publisher ARGS` in the background, its output captured."""
    return subprocess.Popen(
        [*PUBLISHER, *args],
        env=clean_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_until_catching(process: subprocess.Popen, signum: int) -> None:
    """Until ``process`` has a handler for ``signum`` (its start-up, slow on a busy machine,
    is over): a signal sent earlier would kill it instead."""
    deadline = time.monotonic() + 60
    while True:
        with open(f"/proc/{process.pid}/status") as handle:
            caught = next(line for line in handle if line.startswith("SigCgt:"))
        if int(caught.split()[1], 16) & (1 << (signum - 1)):
            return
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"no handler for signal {signum} after 60 s"
        time.sleep(0.02)


def object_names(swift_server: SwiftAIO, container: str) -> list[str]:
    """The container's object names; none while it does not exist."""
    try:
        listing = swift_server.connection().get_container(container, full_listing=True)[1]
    except ClientException:
        return []
    return [o["name"] for o in listing]


def wait_for_objects(
    swift_server: SwiftAIO, container: str, count: int, process: subprocess.Popen
) -> None:
    """Wait until the upload is under way (at least `count` objects stored)."""
    deadline = time.monotonic() + 60
    while len(object_names(swift_server, container)) < count:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "upload did not start"
        time.sleep(0.02)


def processor_ended(pod) -> bool:
    return any(
        s.name == "processor" and s.state.terminated for s in pod.status.container_statuses or []
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


def start_publish(pod, kube_cluster, swift_server, src, container, *extra: str):
    """`publisher publish` of `src`, run beside the cluster, watching `pod`."""
    env = swift_server.environment() | {
        "POD_NAME": pod,
        "POD_NAMESPACE": kube_cluster.namespace,
        "KUBECONFIG": kube_cluster.kubeconfig,
    }
    args = ["--json", "--threads", "2", "--wait-container", "processor", *extra]
    return start_publisher("publish", *args, str(src), f"swift://{container}/out", env=env)


def wait_until_preparing(
    swift_server: SwiftAIO, container: str, process: subprocess.Popen | None = None
) -> None:
    """Until a publish is watching: it creates the destination container while it waits."""
    deadline = time.monotonic() + 60
    while container not in [c["name"] for c in swift_server.connection().get_account()[1]]:
        assert process is None or process.poll() is None, process and process.communicate()
        assert time.monotonic() < deadline, "the publisher did not start waiting"
        time.sleep(0.1)
