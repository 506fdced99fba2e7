"""A container program that tries to reach what a pod must not, for the isolation tests.

It needs no image: ``python3 -c PROBE CHECKS`` runs on the local cluster's nodes (the
venv's ``bin`` comes first on PATH). ``CHECKS`` is a JSON list of ``[name, kind, path,
needle]``; the program prints one JSON line, ``{"uid", "gid", "groups", "checks": {name:
result}}``, where a result is ``{"ok": bool, "data": the first 300 characters of what was
read, or the error, "found": whether what was read holds the needle}``. Kinds:

- ``read``: read a file; ``list``: list a directory; ``write``: create a file and write it;
- ``open-write``: open a file for writing without writing anything (for kernel settings);
- ``read-glob``: read every file a pattern matches (``/proc/[0-9]*/root/...``), ok if any;
- ``umount-read``: ``MOUNT_POINT|FILE``: detach whatever is mounted at MOUNT_POINT (a
  root process with every capability can), then read FILE;
- ``processes``: the process ids listed in ``/proc``.

It also gives every test the ``shared_dir`` fixture (a plugin of the root ``conftest.py``).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

PROBE = r"""
import ctypes, glob, json, os, sys


def read(path):
    with open(path, "rb") as handle:
        return handle.read(65536).decode("utf-8", "replace")


def attempt(kind, path):
    if kind == "read":
        return read(path)
    if kind == "list":
        return " ".join(sorted(os.listdir(path)))
    if kind == "write":
        with open(path, "w") as handle:
            handle.write("written by a container")
        return "written"
    if kind == "open-write":
        os.close(os.open(path, os.O_WRONLY))
        return "opened for writing"
    if kind == "read-glob":
        found = []
        for match in sorted(glob.glob(path)):
            try:
                found.append(read(match))
            except OSError:
                continue
        if not found:
            raise FileNotFoundError(f"nothing readable matches {path}")
        return "\n".join(found)
    if kind == "umount-read":
        mount_point, _, target = path.partition("|")
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.umount2(mount_point.encode(), 2) != 0:
            print(f"umount {mount_point}: {os.strerror(ctypes.get_errno())}", file=sys.stderr)
        return read(target)
    if kind == "processes":
        return " ".join(sorted((p for p in os.listdir("/proc") if p.isdigit()), key=int))
    raise ValueError(f"unknown check {kind}")


results = {}
for name, kind, path, needle in json.loads(sys.argv[1]):
    try:
        data = attempt(kind, path)
        results[name] = {"ok": True, "data": data[:300], "found": bool(needle) and needle in data}
    except Exception as error:
        results[name] = {"ok": False, "data": f"{type(error).__name__}: {error}", "found": False}
print(json.dumps({
    "uid": os.getuid(),
    "gid": os.getgid(),
    "groups": sorted(os.getgroups()),
    "checks": results,
}))
"""


@contextmanager
def shared_directory() -> Iterator[Path]:
    """A directory on this machine that the test and its pods' containers share, removed
    afterwards. Job containers run as a non-root UID (``runAsNonRoot``), which cannot enter
    pytest's own temporary directory (mode 0700): a flag file a processor waits for goes
    here."""
    path = Path(tempfile.mkdtemp(prefix="pman-test-shared-"))
    try:
        path.chmod(0o755)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory this test shares with its jobs' containers (non-root UIDs enter it)."""
    with shared_directory() as path:
        yield path


Check = tuple[str, str, str, str]  # name, kind, path, the secret it must not get ("": none)


def probe_command(checks: list[Check]) -> list[str]:
    """The container command that runs ``checks``."""
    return ["python3", "-c", PROBE, json.dumps(checks)]


def probe_report(log: str) -> dict[str, Any]:
    """The probe's report, from the container's log (its last JSON line)."""
    for line in reversed(log.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise AssertionError(f"the probe printed no report:\n{log}")


def leaked(report: dict[str, Any]) -> dict[str, str]:
    """The checks that got hold of their secret: {check name: the start of what it read}."""
    return {name: r["data"][:200] for name, r in report["checks"].items() if r["found"]}
