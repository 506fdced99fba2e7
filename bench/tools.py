"""The clients compared: the publisher, python-swiftclient's `swift` CLI, and rclone.

Each is run as a separate process with its default settings, against the same server.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack.swiftaio import SwiftAIO

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Run:
    seconds: float
    peak_rss_kib: int
    cpu_seconds: float = 0.0
    """User and system CPU time of the command (and of any children it waited for)."""


def timed(argv: list[str], env: dict[str, str], *, cwd: Path | None = None) -> Run:
    """Run a command to completion; its wall time, peak RSS and CPU time (from wait4)."""
    started = time.perf_counter()
    process = subprocess.Popen(
        argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(
            f"{argv[0]} failed ({process.returncode}): {process.stderr.read()[-2000:]}"
        )
    process.stderr.close()
    return Run(seconds, usage.ru_maxrss, usage.ru_utime + usage.ru_stime)


class Tools:
    """Command lines for each tool, for one Swift server."""

    names = ("publisher", "swift", "rclone")

    def __init__(self, swift: SwiftAIO) -> None:
        self.swift = swift
        self.env = dict(os.environ) | swift.environment()
        self.env |= {
            "RCLONE_CONFIG_BENCH_TYPE": "swift",
            "RCLONE_CONFIG_BENCH_AUTH": swift.auth_url,
            "RCLONE_CONFIG_BENCH_USER": swift.user,
            "RCLONE_CONFIG_BENCH_KEY": swift.key,
        }
        self.rclone = shutil.which("rclone")

    def available(self) -> list[str]:
        return [n for n in self.names if n != "rclone" or self.rclone]

    def upload(self, tool: str, src: Path, container: str) -> Run:
        argv = {
            "publisher": [
                str(BIN / "publisher"),
                "upload",
                "--progress-interval",
                "0",
                str(src),
                f"swift://{container}/data",
            ],
            "swift": [
                str(BIN / "swift"),
                "-q",
                "upload",
                "--object-name",
                "data",
                container,
                str(src),
            ],
            "rclone": [str(self.rclone), "copy", str(src), f"bench:{container}/data"],
        }[tool]
        return timed(argv, self.env)

    def download(self, tool: str, container: str, dest: Path) -> Run:
        argv = {
            "publisher": [
                str(BIN / "publisher"),
                "download",
                "--progress-interval",
                "0",
                f"swift://{container}/data",
                str(dest),
            ],
            "swift": [
                str(BIN / "swift"),
                "-q",
                "download",
                "--prefix",
                "data/",
                "--output-dir",
                str(dest),
                container,
            ],
            "rclone": [str(self.rclone), "copy", f"bench:{container}/data", str(dest)],
            # A reference, not a tool: GETs every object and keeps nothing (bench/getonly.py).
            "get-only": [sys.executable, "-m", "bench.getonly", container, "data/"],
        }[tool]
        return timed(argv, self.env, cwd=ROOT)


def empty_container(swift: SwiftAIO, container: str) -> None:
    """Delete a container, its objects and its segments container (bulk delete)."""
    from urllib.parse import quote

    from swiftclient.exceptions import ClientException

    conn = swift.connection()
    for name in (container, f"{container}_segments"):
        try:
            _, objects = conn.get_container(name, full_listing=True)
        except ClientException:
            continue
        paths = [quote(f"{name}/{o['name']}") for o in objects]
        for start in range(0, len(paths), 5000):
            conn.post_account(
                headers={"Content-Type": "text/plain", "Accept": "application/json"},
                query_string="bulk-delete",
                data="\n".join(paths[start : start + 5000]).encode(),
            )
        with contextlib.suppress(ClientException):
            conn.delete_container(name)


def swift_secret(core: Any, swift: SwiftAIO, name: str = "bench-swift-credentials") -> str:
    """Create the Secret job pods read ``swift-credentials.cfg`` from, in namespace
    ``default`` (``core``: a CoreV1Api); its name."""
    body = {
        "metadata": {"name": name},
        "stringData": {"swift-credentials.cfg": swift.credentials_text()},
    }
    core.create_namespaced_secret("default", body)
    return name
