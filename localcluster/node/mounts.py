"""How volumes appear at their ``mountPath``: which mode this machine allows, and path rewriting.

Modes, best first: ``root`` (a private mount namespace, the local cluster runs as root),
``userns`` (a private mount namespace inside an unprivileged user namespace) and
``rewrite`` (no namespace available: each mountPath prefix in command, args, env values
and workingDir is replaced by the volume's directory on the host, which only reaches paths
the container names itself).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT, USERNS, REWRITE = "root", "userns", "rewrite"
MODES = (ROOT, USERNS, REWRITE)
WRAPPER = Path(__file__).with_name("_wrapper.py")

DESCRIPTIONS = {
    ROOT: "bind mounts in a private mount namespace (root)",
    USERNS: "bind mounts in a private mount namespace inside an unprivileged user namespace",
    REWRITE: "path rewriting: mountPath prefixes in command, args, env and workingDir are "
    "replaced by the volume directories (no mount namespace available)",
}


def _probe(mode: str, scratch: Path, what: str = "--probe") -> bool:
    directory = tempfile.mkdtemp(prefix="probe-", dir=scratch)
    try:
        result = subprocess.run(
            [sys.executable, "-S", str(WRAPPER), what, mode, directory],
            capture_output=True,
            timeout=20,
            check=False,
        )
        return result.returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def detect_mode(scratch: Path, *, wanted: str = "auto") -> str:
    """The best mode that works here (or ``wanted``, if it works)."""
    if wanted == REWRITE:
        return REWRITE
    candidates = [wanted] if wanted in (ROOT, USERNS) else [ROOT, USERNS]
    for mode in candidates:
        if mode == ROOT and os.geteuid() != 0:
            continue
        if _probe(mode, scratch):
            return mode
    if wanted in (ROOT, USERNS):
        raise RuntimeError(f"mount mode {wanted!r} does not work on this machine")
    return REWRITE


def detect_pid_namespace(mode: str, scratch: Path) -> bool:
    """Whether containers get PID namespaces (and their own /proc) in this mode here."""
    return mode in (ROOT, USERNS) and _probe(mode, scratch, "--probe-pid")


class PathRewriter:
    """Replaces mountPath prefixes by host directories inside strings."""

    def __init__(self, mounts: dict[str, str]) -> None:
        self._mounts = {path.rstrip("/") or "/": host for path, host in mounts.items()}
        paths = sorted(self._mounts, key=len, reverse=True)
        if paths:
            alternatives = "|".join(re.escape(p) for p in paths)
            # A mountPath only counts at the start of a path: not preceded by a path
            # character, and followed by "/" or the end of the path.
            self._pattern: re.Pattern[str] | None = re.compile(
                rf"(?<![\w.\-/])({alternatives})(?=/|$|[^\w.\-])"
            )
        else:
            self._pattern = None

    def __call__(self, text: str) -> str:
        if self._pattern is None:
            return text
        return self._pattern.sub(lambda m: self._mounts[m.group(1)], text)
