"""The data routes when what they depend on fails: a full temporary disk (a real, small
tmpfs given to pman as TMPDIR), a Swift that accepts connections and never answers (a real
socket), and the real Swift's proxy frozen (SIGSTOP)."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

import swiftcreds
from devstack.up import PmanProcess
from tests.support.data import container_exists, data_pman, tar_bytes, zip_bytes

# Well inside the 100 s pman's clients wait, far below what a hung Swift used to cost.
CLIENT_PATIENCE = 60
# pman's Swift timeout for the servers that meet a Swift that does not answer: the answer is
# the same with the default, only later.
QUICK = {"swift_timeout": 1}
TAR = {"Content-Type": "application/x-tar"}


@contextmanager
def small_tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def test_a_full_temporary_disk_is_507_saying_what_is_full_and_writes_nothing(
    kube_cluster, swift_server, containers, tmp_path
):
    with small_tmpfs(tmp_path / "tmp", "1m") as tmp:
        env = {
            **os.environ,
            **swift_server.environment(),
            "TMPDIR": str(tmp),
            "KUBECONFIG": kube_cluster.kubeconfig,
            "JOB_NAMESPACE": kube_cluster.namespace,
            "PMAN_STATUS_CACHE": "no",
        }
        pman = PmanProcess(env, tmp_path / "pman.log").start()
        try:
            url = f"{pman.url}/api/v1/_data"
            jid = containers.jid()
            big = tar_bytes({"big.bin": os.urandom(2 << 20)})
            response = requests.post(f"{url}/{jid}/input/", data=big, headers=TAR, timeout=60)
            assert response.status_code == 507, response.text
            message = response.json()["message"]
            assert f"temporary disk ({tmp}, TMPDIR) is full" in message
            assert "bytes free" in message
            # A zip that fits once, but not twice.
            archive = zip_bytes({"half.bin": os.urandom(600 << 10)})
            zipped = {"Content-Type": "application/zip"}
            target = f"{url}/{jid}/input/"
            response = requests.post(target, data=archive, headers=zipped, timeout=60)
            assert response.status_code == 507, response.text
            assert f"about {2 * len(archive)} bytes, twice its size" in response.json()["message"]
            assert not container_exists(swift_server, f"key-{jid}")
            # Room again once the upload is gone: the spool was removed.
            small = tar_bytes({"a.txt": b"a"})
            response = requests.post(f"{url}/{jid}/input/", data=small, headers=TAR, timeout=60)
            assert response.status_code == 201, response.text
        finally:
            pman.stop()


@contextmanager
def silent_server() -> Iterator[int]:
    """A loopback port that accepts connections and never answers; yields the port."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=5)
        for sock in held:
            sock.close()
        listener.close()


def test_a_swift_that_never_answers_is_503_before_the_client_gives_up(
    kube_cluster, swift_server, containers
):
    with silent_server() as port:
        silent = swiftcreds.from_environment(
            {"ST_AUTH": f"http://127.0.0.1:{port}/auth/v1.0", "ST_USER": "a:b", "ST_KEY": "k"}
        )
        with data_pman(kube_cluster, swift_server, swift_credentials=silent, **QUICK) as pman:
            jid = containers.jid()
            url = f"{pman.url}/api/v1/_data/{jid}"
            response = requests.post(
                f"{url}/input/", data=tar_bytes({"x": b"x"}), headers=TAR, timeout=CLIENT_PATIENCE
            )
            assert response.status_code == 503, response.text
            assert "did not answer in time" in response.json()["message"]


def test_a_frozen_swift_proxy_is_503_on_both_data_routes(kube_cluster, swift_server, containers):
    with data_pman(kube_cluster, swift_server, **QUICK) as pman:
        jid = containers.jid()
        url = f"{pman.url}/api/v1/_data/{jid}"
        swift_server.pause("proxy")  # connections are accepted by the kernel, never answered
        try:
            response = requests.post(
                f"{url}/input/", data=tar_bytes({"x": b"x"}), headers=TAR, timeout=CLIENT_PATIENCE
            )
            assert response.status_code == 503, response.text
            assert "did not answer in time" in response.json()["message"]
            response = requests.get(f"{url}/output/", timeout=CLIENT_PATIENCE)
            assert response.status_code == 503, response.text
        finally:
            swift_server.resume("proxy")
