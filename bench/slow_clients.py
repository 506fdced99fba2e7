"""Slow clients against pman under gunicorn: does everyone else still get answers?

    python -m bench.slow_clients [--slow 100] [--probes 30] [--config python:pman.gunicorn_conf]

Starts pman under gunicorn as the image does (``gunicorn --config python:pman.gunicorn_conf``,
with a token, bound to loopback, no status cache and a Kubernetes that is not there: the
probed routes need none), then, for each kind of slow client, opens ``--slow`` connections
that send their request a few bytes a second and never finish it, and meanwhile times
``--probes`` ordinary requests (``GET /api/v1/`` with the token, each on a new connection,
one after the other, given up after 5 s):

- ``headers``: request headers sent a few bytes at a time, no token (anyone can);
- ``bodies, no token``: ``POST /api/v1/`` with complete headers and a body that trickles;
- ``bodies, token``: the same with the right token, so the body is read by pman.

Every set-up runs in the same run: the one the image uses now, and for comparison the
image's former one, gunicorn's ``gthread`` worker with 2 workers of 8 threads
(``--compare`` names others as ``worker_class:workers:threads``). The table gives, per
set-up and kind, how many probes were answered and their median and slowest latency.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

BIN = Path(sys.executable).parent
TOKEN = "bench-t0ken"
KINDS = ("headers", "bodies, no token", "bodies, token")
PROBE_TIMEOUT = 3.0


@dataclass
class Result:
    setup: str
    kind: str
    slow: int
    latencies: list[float]
    probes: int
    rss_mib: int

    def row(self) -> str:
        answered = len(self.latencies)
        if answered:
            median = f"{statistics.median(self.latencies) * 1000:.0f}"
            worst = f"{max(self.latencies) * 1000:.0f}"
        else:
            median = worst = "-"
        return (
            f"| {self.setup} | {self.kind} | {self.slow} | {answered}/{self.probes} | "
            f"{median} | {worst} | {self.rss_mib} |"
        )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def gunicorn(workdir: Path, extra: list[str]) -> Iterator[tuple[str, int]]:
    """pman under gunicorn with the image's config (plus ``extra`` arguments); its URL and
    the master's pid."""
    port = free_port()
    kubeconfig = workdir / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: c, cluster: {server: 'http://127.0.0.1:9'}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
    )
    env = {
        **os.environ,
        "PMAN_BIND": f"127.0.0.1:{port}",
        "KUBECONFIG": str(kubeconfig),
        "PMAN_STATUS_CACHE": "no",
        "PMAN_API_TOKEN": TOKEN,
    }
    log = (workdir / f"gunicorn-{port}.log").open("w")
    command = [str(BIN / "gunicorn"), "--config", "python:pman.gunicorn_conf", *extra]
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not start; see {log.name}")
            time.sleep(0.1)
        yield url, process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def slow_request(kind: str, host: str) -> tuple[bytes, bytes]:
    """What a slow client of ``kind`` sends at once, and what it then trickles forever."""
    if kind == "headers":
        return (
            b"GET /api/v1/ HTTP/1.1\r\nHost: " + host.encode() + b"\r\n",
            b"X-Slow: " + b"a" * 4096,
        )
    auth = f"Authorization: Bearer {TOKEN}\r\n".encode() if kind == "bodies, token" else b""
    head = (
        b"POST /api/v1/ HTTP/1.1\r\nHost: "
        + host.encode()
        + b"\r\n"
        + auth
        + b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
    )
    return head, b'{"jid": "' + b"a" * 99000


class SlowClients:
    """``count`` connections that each send a byte every ``every`` seconds until stopped."""

    def __init__(self, url: str, kind: str, count: int, *, every: float = 0.5) -> None:
        self._address = ("127.0.0.1", int(url.rsplit(":", 1)[1]))
        self._host = url.removeprefix("http://")
        self._kind, self._count, self._every = kind, count, every
        self._stop = threading.Event()
        self._sockets: list[socket.socket] = []
        self._thread = threading.Thread(target=self._trickle, daemon=True)

    def __enter__(self) -> SlowClients:
        head, _ = slow_request(self._kind, self._host)
        for _ in range(self._count):
            sock = socket.create_connection(self._address, timeout=5)
            sock.sendall(head)
            self._sockets.append(sock)
        self._thread.start()
        return self

    def open(self) -> int:
        """How many of the slow connections the server has not closed."""
        return len(self._sockets)

    def _trickle(self) -> None:
        _, rest = slow_request(self._kind, self._host)
        position = 0
        while not self._stop.wait(self._every):
            byte = rest[position % len(rest) : position % len(rest) + 1]
            position += 1
            for sock in list(self._sockets):
                try:
                    sock.send(byte)
                except OSError:
                    self._sockets.remove(sock)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        for sock in self._sockets:
            sock.close()


def probe(url: str, count: int) -> list[float]:
    """Latencies of the ``GET /api/v1/`` requests that were answered within the timeout."""
    latencies = []
    headers = {"Authorization": f"Bearer {TOKEN}", "Connection": "close"}
    for _ in range(count):
        start = time.perf_counter()
        try:
            response = requests.get(f"{url}/api/v1/", headers=headers, timeout=PROBE_TIMEOUT)
        except requests.RequestException:
            continue
        if response.status_code == 200:
            latencies.append(time.perf_counter() - start)
    return latencies


def measure(setup: str, extra: list[str], *, slow: int, probes: int, work: Path) -> list[Result]:
    results = []
    with gunicorn(work, extra) as (url, master):
        for kind in KINDS:
            with SlowClients(url, kind, slow):
                time.sleep(2)  # the slow requests are under way
                latencies = probe(url, probes)
                rss = workers_rss_mib(master)
            results.append(Result(setup, kind, slow, latencies, probes, rss))
            print(results[-1].row(), file=sys.stderr, flush=True)
    return results


def workers_rss_mib(master: int) -> int:
    """Resident memory of gunicorn's workers, together."""
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    total = 0
    for pid in children:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total // 1024


def table(results: list[Result]) -> str:
    lines = [
        "| set-up | slow clients | connections | answered | p50 ms | slowest ms "
        "| workers' RSS MiB |",
        "|---|---|---|---|---|---|---|",
    ]
    return "\n".join(lines + [result.row() for result in results])


def _setup(spec: str) -> tuple[str, list[str]]:
    worker_class, workers, threads = spec.split(":")
    name = f"{worker_class}, {workers} workers x {threads} threads"
    extra = ["--worker-class", worker_class, "--workers", workers, "--threads", threads]
    app = "pman.asgi:create_asgi_app()" if worker_class == "asgi" else "pman.app:create_app()"
    return name, [*extra, app]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.slow_clients")
    parser.add_argument("--slow", type=int, default=100)
    parser.add_argument("--probes", type=int, default=30)
    parser.add_argument("--compare", action="append", default=None)
    args = parser.parse_args(argv)
    setups = [("the image's set-up (pman.gunicorn_conf)", [])]
    setups += [_setup(spec) for spec in args.compare or ["gthread:2:8"]]
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="pman-slow-") as work:
        for name, extra in setups:
            results += measure(name, extra, slow=args.slow, probes=args.probes, work=Path(work))
    print(f"{args.probes} probes (GET /api/v1/, {PROBE_TIMEOUT:.0f} s timeout) per row, 2 cores.")
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
