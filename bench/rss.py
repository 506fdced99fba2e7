"""Peak RSS of `publisher upload` for 256 MiB and 2 GiB of output."""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path

from bench.datasets import GIB, MIB, make_large
from bench.tools import BIN, Tools, empty_container


def peak_rss_kib(argv: list[str], env: dict[str, str]) -> int:
    """Run a command; its VmHWM (peak resident set) read from /proc until it exits.

    (wait4's ru_maxrss would include the parent's memory copied at fork time.)
    """
    process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    status = Path(f"/proc/{process.pid}/status")
    while process.poll() is None:
        try:
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
        except (OSError, ValueError):
            pass
        time.sleep(0.01)
    if process.returncode != 0:
        raise RuntimeError(f"publisher failed: {process.stderr.read()[-2000:]}")
    return peak


def run(tools: Tools, scratch: Path, say) -> list[tuple[str, int, int]]:
    """[(output description, bytes, peak RSS in KiB)] for 256 MiB and 2 GiB outputs."""
    rows = []
    for label, size in (("256 MiB (one file)", 256 * MIB), ("2 GiB (one file)", 2 * GIB)):
        src = make_large(scratch / f"rss-{size}", size=size)
        container = f"bench-rss-{uuid.uuid4().hex[:8]}"
        argv = [
            str(BIN / "publisher"),
            "upload",
            "--progress-interval",
            "0",
            str(src),
            f"swift://{container}/data",
        ]
        peak = peak_rss_kib(argv, tools.env)
        empty_container(tools.swift, container)
        say(f"peak RSS uploading {label}: {peak / 1024:.0f} MiB")
        rows.append((label, size, peak))
    small = scratch / "small"
    if small.exists():
        container = f"bench-rss-{uuid.uuid4().hex[:8]}"
        argv = [
            str(BIN / "publisher"),
            "upload",
            "--progress-interval",
            "0",
            str(small),
            f"swift://{container}/data",
        ]
        peak = peak_rss_kib(argv, tools.env)
        empty_container(tools.swift, container)
        say(f"peak RSS uploading 2,000 small files: {peak / 1024:.0f} MiB")
        rows.append(("2,000 small files", 0, peak))
    return rows
