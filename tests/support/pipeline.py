"""Helpers for the end-to-end tests: pman as a real process, and a client that polls it.

Everything is real: pman runs as its own ``pman serve`` process, its Jobs run on the
test cluster, the job pods' ``stage-in`` and ``publish`` containers run the real
publisher against the real Swift server, and the processor is a program on this machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import kubernetes

from devstack.up import EXAMPLES, PmanProcess
from tests.support.cluster import KubeCluster
from tests.support.names import unique_name
from tests.support.rest import Job, job_pods
from tests.support.waiting import eventually

ORDER = {"notstarted": 0, "started": 1, "finishedSuccessfully": 2, "finishedWithError": 2}
WORDCOUNT = EXAMPLES / "wordcount" / "wordcount.py"
SAMPLE_INPUT = EXAMPLES / "wordcount" / "input"
MANIFEST = ".publisher-manifest.json"


def python_entrypoint(script: str) -> list[str]:
    """A processor that needs no image: the pods' PATH starts with the venv's bin."""
    return ["python3", "-c", script]


def job_body(bucket: str, jid: str | None = None, **changes: Any) -> Job:
    """A ds job running the sample program on the bucket's sample input."""
    jid = jid or unique_name("e2e")
    return {
        "jid": jid,
        "image": "python:3.11-slim",
        "entrypoint": ["python3", str(WORDCOUNT)],
        "args": [],
        "auid": "e2e",
        "number_of_workers": 1,
        "cpu_limit": 1000,
        "memory_limit": 200,
        "gpu_limit": 0,
        "type": "ds",
        "input_dir": f"{bucket}/incoming",
        "output_dir": f"{bucket}/out-{jid}",
        **changes,
    }


@contextmanager
def pman_process(
    cluster: KubeCluster, secret: str, log_dir: Path, *, port: int = 0
) -> Iterator[PmanProcess]:
    """``pman serve`` on the test cluster, as a separate process; stopped afterwards."""
    env = {
        **os.environ,
        "KUBECONFIG": cluster.kubeconfig,
        "JOB_NAMESPACE": cluster.namespace,
        "SWIFT_SECRET_NAME": secret,
    }
    process = PmanProcess(env, log_dir / f"pman-{unique_name('log')}.log", port=port)
    process.start()
    try:
        yield process
    finally:
        process.stop()


def container_log(cluster: KubeCluster, pod: str, container: str) -> str:
    with cluster.api_client() as api:
        core = kubernetes.client.CoreV1Api(api)
        return core.read_namespaced_pod_log(pod, cluster.namespace, container=container)


def terminated(pod: Any, container: str) -> Any:
    """The container's terminated state, or None."""
    for status in pod.status.container_statuses or []:
        if status.name == container:
            return status.state.terminated
    return None


def outputs(connection: Any, container: str, prefix: str) -> dict[str, dict[str, Any]]:
    """Objects under ``prefix`` by their name relative to it."""
    _, listing = connection.get_container(container, prefix=f"{prefix}/", full_listing=True)
    return {obj["name"].removeprefix(f"{prefix}/"): obj for obj in listing}


def manifest(connection: Any, container: str, prefix: str) -> dict[str, Any]:
    _, data = connection.get_object(container, f"{prefix}/{MANIFEST}")
    return json.loads(data)


def upload_sample(connection: Any, container: str, prefix: str) -> None:
    connection.put_container(container)
    for path in sorted(SAMPLE_INPUT.rglob("*")):
        if path.is_file():
            name = f"{prefix}/{path.relative_to(SAMPLE_INPUT).as_posix()}"
            connection.put_object(container, name, path.read_bytes())


def wordcount_locally(tmp: Path, *args: str) -> dict[str, Any]:
    """What the sample program writes for the sample input when run here directly."""
    out = tmp / f"local-{unique_name('out')}"
    out.mkdir()
    command = [sys.executable, str(WORDCOUNT), *args, str(SAMPLE_INPUT), str(out)]
    subprocess.run(command, check=True, capture_output=True, timeout=30)
    return {p.name: p.read_bytes() for p in out.iterdir()}


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


# Waits for a file the test creates, so the test decides when the processor ends.
WAIT_FOR_FLAG = (
    "import os, sys, time\n"
    "print('waiting for the flag', flush=True)\n"
    "while not os.path.exists(os.environ['FLAG']): time.sleep(0.05)\n"
    "open(sys.argv[-1] + '/result.txt', 'w').write('done\\n')\n"
    "print('done', flush=True)\n"
)


def waiting_job(bucket: str, flag) -> dict:
    return job_body(bucket, entrypoint=python_entrypoint(WAIT_FOR_FLAG), env=[f"FLAG={flag}"])


def is_waiting(job: dict) -> bool:
    return job["phase"] == "running" and "waiting for the flag" in job["logs"]


def wait_for_log(cluster, pod: str, container: str, *texts: str, timeout: float = 60) -> str:
    """The container's log once it holds one of `texts`."""

    def logged() -> str | None:
        log = container_log(cluster, pod, container)
        return log if any(text in log for text in texts) else None

    try:
        return eventually(logged, timeout=timeout, what=f"{container} logging any of {texts!r}")
    except AssertionError as error:
        raise AssertionError(
            f"{error}; its log: {container_log(cluster, pod, container)!r}"
        ) from None


def publish_through_a_swift_outage(pman, cluster, swift_server, jid: str, flag: Path) -> Job:
    """Stop Swift's proxy, let the waiting job's processor end (``flag``), see its publish
    container meet the outage while the job stays ``started``, start Swift again; the job's
    final state."""
    (pod,) = job_pods(cluster, jid)
    swift_server.stop_server("proxy")
    try:
        flag.touch()
        # It meets the outage: uploads are retried, or, when it had not authenticated yet
        # (authentication retries are shown only with -v), its preparation says so.
        log = wait_for_log(cluster, pod.metadata.name, "publish", "retrying in", "will try again")
        assert "container processor ended: Completed" in log
        assert pman.get(jid).json()["status"] == "started"
    finally:
        swift_server.start_server("proxy")
    return pman.wait(jid)[0]
