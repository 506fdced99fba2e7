"""Running the publisher's CLI in tests: to completion or in the background, against the
session's Swift server, and the waits that go with it."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass

from swiftclient.exceptions import ClientException

from devstack.swiftaio import SwiftAIO
from pman.pod import PROCESSOR
from tests.support.waiting import eventually

PUBLISHER = [sys.executable, "-m", "publisher"]
FILES = 400
"""How many files ``many_files`` holds: enough for a transfer to be stopped half-way."""


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

    def catching() -> bool:
        with open(f"/proc/{process.pid}/status") as handle:
            caught = next(line for line in handle if line.startswith("SigCgt:"))
        return bool(int(caught.split()[1], 16) & (1 << (signum - 1)))

    eventually(catching, interval=0.02, what=f"a handler for signal {signum}", alive=process)


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
    eventually(
        lambda: len(object_names(swift_server, container)) >= count,
        interval=0.02,
        what="the upload under way",
        alive=process,
    )


def processor_ended(pod) -> bool:
    return any(
        s.name == PROCESSOR and s.state.terminated for s in pod.status.container_statuses or []
    )


def start_publish(pod, kube_cluster, swift_server, src, container, *extra: str):
    """`publisher publish` of `src`, run beside the cluster, watching `pod`."""
    env = swift_server.environment() | {
        "POD_NAME": pod,
        "POD_NAMESPACE": kube_cluster.namespace,
        "KUBECONFIG": kube_cluster.kubeconfig,
    }
    args = ["--json", "--threads", "2", "--wait-container", PROCESSOR, *extra]
    return start_publisher("publish", *args, str(src), f"swift://{container}/out", env=env)


def wait_until_preparing(
    swift_server: SwiftAIO, container: str, process: subprocess.Popen | None = None
) -> None:
    """Until a publish is watching: it creates the destination container while it waits."""
    eventually(
        lambda: container in [c["name"] for c in swift_server.connection().get_account()[1]],
        what="the publisher waiting",
        alive=process,
    )
