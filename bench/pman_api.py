"""pman API benchmark: submit and status throughput with 1,000 jobs on the local cluster.

    python -m bench.pman_api [--jobs 1000] [--gets 3000] [--clients 8]

Starts a local cluster and pman (gunicorn with the image's config, one worker of eight threads)
as separate processes, submits ``--jobs`` jobs through ``POST /api/v1/``, then times
``GET /api/v1/<jid>/`` on random jobs from ``--clients`` concurrent clients:

- pman with its watch-fed status cache (the default);
- pman asking Kubernetes on every GET (``PMAN_STATUS_CACHE=no``);
- upstream-style status, for comparison: what upstream pman's GET handler did per
  request (read the Job, list its pods by ``job-name``, read each pod's log, through
  the client's model classes), called directly from the benchmark process.

and, last, upstream-style submission (the same Job created as a client model, from the
benchmark process) against pman's ``POST``. Upstream-style rows skip the HTTP hop to pman,
which favours them.

Kubernetes requests per GET are counted from the local cluster's audit log (watch
connections excluded). The jobs' Swift Secret does not exist, so their pods wait for
it, as on a real node, and no job container runs during the measurement.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import kubernetes
import requests

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
BIN = Path(PYTHON).parent


@dataclass
class Phase:
    """Timings of one measured phase."""

    name: str
    latencies: list[float]
    seconds: float
    kube_requests: int | None = None

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]

    def row(self) -> str:
        per = (
            "" if self.kube_requests is None else f"{self.kube_requests / len(self.latencies):.2f}"
        )
        return (
            f"| {self.name} | {len(self.latencies)} | {self.rate:.0f} | "
            f"{self.percentile(50) * 1000:.1f} | {self.percentile(99) * 1000:.1f} | {per} |"
        )


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-pman-") as scratch:
        phases = run(Path(scratch), jobs=args.jobs, gets=args.gets, clients=args.clients)
    print(table(phases, jobs=args.jobs, clients=args.clients))
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.pman_api", description=__doc__)
    parser.add_argument("--jobs", type=int, default=1000, help="jobs present (1000)")
    parser.add_argument("--gets", type=int, default=3000, help="status GETs per variant (3000)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (8)")
    return parser


def run(scratch: Path, *, jobs: int, gets: int, clients: int) -> list[Phase]:
    """Every phase, in order, on one local cluster."""
    audit = scratch / "audit.log"
    with (
        local_cluster(scratch, audit) as kubeconfig,
        pman(kubeconfig, scratch, cache=True) as cached,
        pman(kubeconfig, scratch, cache=False) as direct,
        kubernetes.config.new_client_from_config(config_file=str(kubeconfig)) as api,
    ):
        jids, submit = submit_jobs(cached, jobs, clients)
        wait_until_listed(cached, jids)
        phases = [submit]
        for name, url in (("GET, watch-fed cache", cached), ("GET, no cache", direct)):
            call = functools.partial(status, url)
            phases.append(measure(name, audit, call, jids, gets, clients))
        upstream = upstream_status(api)
        phases.append(measure("GET, upstream-style", audit, upstream, jids, gets, clients))
        phases.append(upstream_submit(api, jobs, clients))
    return phases


@contextmanager
def local_cluster(scratch: Path, audit: Path) -> Iterator[Path]:
    """``localcluster serve`` in its own process; yields its kubeconfig."""
    kubeconfig = scratch / "kubeconfig"
    command = [PYTHON, "-m", "localcluster", "serve", "--kubeconfig", str(kubeconfig),
               "--state-dir", str(scratch / "cluster"), "--audit-log", str(audit)]  # fmt: skip
    with _process(command, scratch / "localcluster.log"):
        _wait(lambda: kubeconfig.exists(), "the local cluster's kubeconfig")
        yield kubeconfig


@contextmanager
def pman(kubeconfig: Path, scratch: Path, *, cache: bool) -> Iterator[str]:
    """pman under gunicorn with the image's config, one worker of eight threads; its URL."""
    port = _free_port()
    env = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        "PMAN_BIND": f"127.0.0.1:{port}",
        "PMAN_WORKERS": "1",
        "PMAN_THREADS": "8",
        "PMAN_STATUS_CACHE": "yes" if cache else "no",
        "SWIFT_SECRET_NAME": "absent-on-purpose",
    }
    command = [
        str(BIN / "gunicorn"),
        "--config",
        "python:pman.gunicorn_conf",
        "--access-logfile",
        "/dev/null",
    ]
    log = scratch / f"pman-{'cache' if cache else 'direct'}.log"
    with _process(command, log, env=env):
        url = f"http://127.0.0.1:{port}"
        _wait(lambda: _answers(f"{url}/readyz"), "pman to be ready")
        yield url


def submit_jobs(url: str, count: int, clients: int) -> tuple[list[str], Phase]:
    """POST ``count`` jobs; their jids and the timings."""
    run = uuid.uuid4().hex[:6]
    jids = [f"bench-{run}-{i}" for i in range(count)]

    def submit(jid: str) -> None:
        response = _session().post(f"{url}/api/v1/", json=job_request(jid), timeout=100)
        if response.status_code != 201:
            raise RuntimeError(f"POST {jid}: {response.status_code} {response.text}")

    return jids, _timed("POST", jids, submit, clients)


def job_request(jid: str) -> dict:
    """pfcon's request, with numeric strings as pfcon's own tests send them."""
    return {
        "jid": jid, "args": ["--saveinputmeta", "--dir", "cube/uploads"],
        "args_path_flags": ["--dir"], "auid": "cube", "number_of_workers": "1",
        "cpu_limit": "1000", "memory_limit": "200", "gpu_limit": "0",
        "image": "fnndsc/pl-simplefsapp", "entrypoint": ["python3", "/app.py"], "type": "fs",
        "env": [f"CHRIS_JID={jid}"], "input_dir": f"key-{jid}/incoming",
        "output_dir": f"key-{jid}/outgoing",
    }  # fmt: skip


def wait_until_listed(url: str, jids: list[str]) -> None:
    """Until every job and its pod exist (the job controller has caught up)."""

    def all_have_pods() -> bool:
        listed = _session().get(f"{url}/api/v1/_jobs/", timeout=100).json()["jobs"]
        mine = [job for job in listed if job["jid"] in set(jids)]
        waiting = [
            job for job in mine if job["message"] == "waiting for the job's pod to be created"
        ]
        return len(mine) == len(jids) and not waiting

    _wait(all_have_pods, "every job's pod", timeout=600)


def status(url: str, jid: str) -> None:
    response = _session().get(f"{url}/api/v1/{jid}/", timeout=100)
    if response.status_code != 200:
        raise RuntimeError(f"GET {jid}: {response.status_code} {response.text}")


def upstream_submit(api: kubernetes.client.ApiClient, count: int, clients: int) -> Phase:
    """Upstream pman's POST: the same Job as a client model, created and read back as one."""
    from pman.jobspec import build_job
    from pman.models import parse_job_request
    from pman.settings import Settings

    batch, settings = kubernetes.client.BatchV1Api(api), Settings()
    run = uuid.uuid4().hex[:6]

    def submit(jid: str) -> None:
        manifest = build_job(parse_job_request(job_request(jid)), settings, run="bench")
        batch.create_namespaced_job("default", kubernetes.client.V1Job.model_validate(manifest))

    return _timed("POST, upstream-style", [f"up-{run}-{i}" for i in range(count)], submit, clients)


def upstream_status(api: kubernetes.client.ApiClient) -> Callable[[str], None]:
    """Upstream pman's GET: read the Job, list its pods, read every pod's log (as models)."""
    batch, core = kubernetes.client.BatchV1Api(api), kubernetes.client.CoreV1Api(api)

    def get(jid: str) -> None:
        batch.read_namespaced_job(jid, "default")
        for pod in core.list_namespaced_pod("default", label_selector=f"job-name={jid}").items:
            # Upstream answered a placeholder while the container was being created.
            with contextlib.suppress(kubernetes.client.ApiException):
                core.read_namespaced_pod_log(pod.metadata.name, "default", tail_lines=1000)

    return get


def measure(
    name: str, audit: Path, call: Callable[[str], None], jids: list[str], gets: int, clients: int
) -> Phase:
    """``gets`` calls on random jobs, with the Kubernetes requests they caused."""
    chosen = random.Random(42).choices(jids, k=gets)
    before = _audited(audit)
    phase = _timed(name, chosen, call, clients)
    time.sleep(0.5)  # let the audit log catch up with the last request
    phase.kube_requests = _audited(audit) - before
    return phase


def _timed(name: str, items: list[str], call: Callable[[str], None], clients: int) -> Phase:
    def one(item: str) -> float:
        start = time.perf_counter()
        call(item)
        return time.perf_counter() - start

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        latencies = list(pool.map(one, items))
    return Phase(name, latencies, time.perf_counter() - start)


def _audited(audit: Path) -> int:
    """Non-watch API requests in the audit log so far."""
    count = 0
    with audit.open() as handle:
        for line in handle:
            event = json.loads(line)
            if event.get("verb") != "watch":
                count += 1
    return count


def table(phases: list[Phase], *, jobs: int, clients: int) -> str:
    """The Markdown table for bench/README.md."""
    lines = [
        f"{jobs} jobs present, {clients} concurrent clients, {os.cpu_count()} cores.",
        "",
        "| operation | requests | per second | p50 ms | p99 ms | Kubernetes requests per call |",
        "|---|---|---|---|---|---|",
        *(phase.row() for phase in phases),
    ]
    rate = {phase.name: phase.rate for phase in phases}
    lines += [
        "",
        "Throughput, pman vs upstream-style: status GET "
        f"{rate['GET, watch-fed cache'] / rate['GET, upstream-style']:.1f}x, "
        f"POST {rate['POST'] / rate['POST, upstream-style']:.1f}x.",
    ]
    return "\n".join(lines)


_local = threading.local()


def _session() -> requests.Session:
    if not hasattr(_local, "session"):
        _local.session = requests.Session()
    return _local.session


@contextmanager
def _process(command: list[str], log: Path, *, env: dict[str, str] | None = None) -> Iterator[None]:
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, env=env, cwd=REPO
        )
        try:
            yield
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait(ready: Callable[[], bool], what: str, *, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if ready():
                return
        except (OSError, requests.RequestException, ValueError, KeyError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"timed out waiting for {what}")


def _answers(url: str) -> bool:
    return requests.get(url, timeout=5).status_code == 200


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


if __name__ == "__main__":
    sys.exit(main())
