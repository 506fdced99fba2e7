"""Many tiny files through pman's data route, against the publisher moving the same files.

    python -m bench.uploads [--files 5000] [--size 100] [--rounds 1]

Starts a Swift all-in-one, a local cluster and pman under gunicorn as the image runs it (one
worker), builds a tar of ``--files`` files of ``--size`` bytes (in 50 directories), and
times, in alternating rounds:

- ``POST /api/v1/_data/<jid>/input/`` of that tar until pman has every file in Swift: the
  201 answer, or for an upload pman finishes in the background (202), until
  ``GET /api/v1/_data/<jid>/input/`` says it is done;
- ``publisher upload`` of the same files, unpacked, to another prefix of the same Swift
  (what a job's publish container does), for comparison.

Each upload goes to a fresh container, checked afterwards (object count).
"""

from __future__ import annotations

import argparse
import io
import os
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from bench.tools import BIN, timed
from devstack.swiftaio import SwiftAIO
from localcluster.cluster import LocalCluster


def tiny_tree(root: Path, files: int, size: int) -> bytes:
    """``files`` files of ``size`` bytes under ``root``; the same as a tar, in memory."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for number in range(files):
            name = f"d{number % 50:02d}/f{number:06d}.dat"
            data = os.urandom(size)
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            info = tarfile.TarInfo(name)
            info.size = size
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def pman(swift: SwiftAIO, kubeconfig: Path, work: Path) -> Iterator[str]:
    """pman under gunicorn with the image's config, one worker; its URL."""
    port = free_port()
    env = {
        **os.environ,
        **swift.environment(),
        "KUBECONFIG": str(kubeconfig),
        "PMAN_BIND": f"127.0.0.1:{port}",
        "PMAN_WORKERS": "1",
        "PMAN_STATUS_CACHE": "no",
    }
    command = [str(BIN / "gunicorn"), "--config", "python:pman.gunicorn_conf"]
    with (work / "pman.log").open("w") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}/api/v1/"
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    requests.get(url, timeout=1)
                    break
                except requests.RequestException:
                    time.sleep(0.2)
            yield url
        finally:
            process.terminate()
            process.wait(timeout=30)


def pman_upload(url: str, body: bytes) -> tuple[float, str]:
    """Seconds from the POST until pman says every file is in Swift, and the container."""
    jid = f"bench-{uuid.uuid4().hex[:8]}"
    target = f"{url}_data/{jid}/input/"
    started = time.perf_counter()
    response = requests.post(
        target, data=body, headers={"Content-Type": "application/x-tar"}, timeout=3600
    )
    if response.status_code == 202:
        while True:
            time.sleep(0.2)
            answer = requests.get(target, timeout=100)
            if answer.status_code != 200:
                print(f"status: {answer.status_code} {answer.text}", file=sys.stderr)
                continue
            if (state := answer.json())["state"] != "uploading":
                break
        if state["state"] != "done":
            raise RuntimeError(f"upload failed: {state}")
    elif response.status_code != 201:
        raise RuntimeError(f"upload refused: {response.status_code} {response.text}")
    seconds = time.perf_counter() - started
    return seconds, f"key-{jid}"


def count(swift: SwiftAIO, container: str) -> int:
    headers = swift.connection().head_container(container)
    return int(headers["x-container-object-count"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.uploads")
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="pman-uploads-") as scratch:
        work = Path(scratch)
        body = tiny_tree(work / "tree", args.files, args.size)
        with SwiftAIO(work / "swift") as swift:
            cluster = LocalCluster(work / "cluster")
            cluster.start()
            try:
                with pman(swift, cluster.kubeconfig_path, work) as url:
                    times: dict[str, list[float]] = {"pman": [], "publisher": []}
                    for _ in range(args.rounds):
                        seconds, container = pman_upload(url, body)
                        assert count(swift, container) == args.files, container
                        times["pman"].append(seconds)
                        print(f"pman: {seconds:.1f} s", file=sys.stderr, flush=True)
                        container = f"bench-pub-{uuid.uuid4().hex[:8]}"
                        command = [str(BIN / "publisher"), "upload", "--progress-interval", "0"]
                        command += [str(work / "tree"), f"swift://{container}/in"]
                        run = timed(command, dict(os.environ) | swift.environment())
                        assert count(swift, container) >= args.files, container
                        times["publisher"].append(run.seconds)
                        print(f"publisher: {run.seconds:.1f} s", file=sys.stderr, flush=True)
            finally:
                cluster.stop()
    pman_s, pub_s = statistics.median(times["pman"]), statistics.median(times["publisher"])
    print(f"{args.files} files of {args.size} bytes, {args.rounds} round(s), medians:")
    print("| tool | seconds | files/s |")
    print("|---|---|---|")
    print(f"| pman POST /api/v1/_data/<jid>/input/ | {pman_s:.1f} | {args.files / pman_s:.0f} |")
    print(f"| publisher upload | {pub_s:.1f} | {args.files / pub_s:.0f} |")
    print(f"pman vs publisher: {pub_s / pman_s:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
