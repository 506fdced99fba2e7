"""pman as the image serves it (gunicorn with ``pman.gunicorn_conf``, real sockets on
loopback) keeps answering while clients hold requests half sent."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
import requests

from devstack.processes import free_port
from tests.support.pman_server import unreachable_kubeconfig
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

GUNICORN = Path(sys.executable).with_name("gunicorn")
TOKEN = "serving-t0ken"
# More than the former 2 workers x 8 threads could hold, few enough for any machine.
SLOW_HEADERS = 40
SLOW_BODIES = 40


@contextmanager
def gunicorn_pman(tmp_path: Path) -> Iterator[tuple[str, int]]:
    """pman under gunicorn with the image's settings; its URL and port."""
    port = free_port()
    env = {
        **os.environ,
        "PMAN_BIND": f"127.0.0.1:{port}",
        "KUBECONFIG": str(unreachable_kubeconfig(tmp_path)),
        "PMAN_STATUS_CACHE": "no",
        "PMAN_API_TOKEN": TOKEN,
    }
    env.pop("PMAN_THREADS", None)
    env.pop("PMAN_WORKERS", None)
    with (tmp_path / "gunicorn.log").open("w") as log:
        process = subprocess.Popen(
            [str(GUNICORN), "--config", "python:pman.gunicorn_conf"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        eventually(lambda: answers(f"{url}/healthz"), timeout=60, what="gunicorn to serve pman")
        yield url, port
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def half_sent(port: int, head: bytes, stack: ExitStack) -> None:
    """A connection that has sent ``head`` and then nothing more (until it is closed)."""
    sock = stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=10))
    sock.sendall(head)


def test_pman_answers_while_clients_hold_headers_and_bodies_half_sent(tmp_path):
    auth = f"Authorization: Bearer {TOKEN}\r\n".encode()
    slow_headers = b"GET /api/v1/ HTTP/1.1\r\nHost: pman\r\nX-Slow: aaaa"
    slow_body = (
        b"POST /api/v1/ HTTP/1.1\r\nHost: pman\r\n" + auth + b"Content-Type: application/json"
        b"\r\nContent-Length: 100000\r\n\r\n" + b'{"jid": "' + b"a" * 1000
    )
    with gunicorn_pman(tmp_path) as (url, port), ExitStack() as stack:
        for _ in range(SLOW_HEADERS):
            half_sent(port, slow_headers, stack)
        for _ in range(SLOW_BODIES):
            half_sent(port, slow_body, stack)
        time.sleep(1)  # every half-sent request has reached a worker
        headers = {"Authorization": f"Bearer {TOKEN}", "Connection": "close"}
        codes = []
        for _ in range(5):
            try:
                response = requests.get(f"{url}/api/v1/", headers=headers, timeout=10)
                codes.append(response.status_code)
            except requests.RequestException as error:
                codes.append(type(error).__name__)
        assert codes == [200] * 5
