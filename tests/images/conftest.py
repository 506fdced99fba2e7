"""The image tier: pman's two images, built by ``scripts/images.py`` (what ``make images``
runs) once per session from the working tree, and run with podman.

``images`` -> :class:`Images`: the built images' names (``pman``, ``publisher``), the build
report (base image, sizes, build times, logs), the :class:`~tests.support.podman.Podman`
handle with this machine's options, and the UID every container of the session runs as
(one OpenShift would pick). Podman's layer cache makes the build a few seconds when
nothing changed; the first build on a machine also makes the base image (about a minute).

Every test that takes ``images`` is skipped, with podman's reason, where podman is not
installed or cannot run a container; a failing build fails them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.podman import Podman, openshift_uid

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD = REPO_ROOT / "scripts" / "images.py"
# scripts/images.py's exit status when podman cannot run containers on this machine.
PODMAN_UNUSABLE = 3
_summary: list[str] = []


@dataclass(frozen=True)
class Images:
    pman: str
    publisher: str
    report: dict[str, Any]
    podman: Podman
    uid: int


@pytest.fixture(scope="session")
def images(tmp_path_factory: pytest.TempPathFactory) -> Images:
    report_path = tmp_path_factory.mktemp("images") / "report.json"
    built = subprocess.run(
        [sys.executable, str(BUILD), "--report", str(report_path)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    output = (built.stdout + built.stderr).strip()
    if built.returncode == PODMAN_UNUSABLE:
        # One line from scripts/images.py: podman is missing, or podman's own reason.
        lines = [line for line in output.splitlines() if line.startswith("images: ")]
        pytest.skip(lines[-1].removeprefix("images: ") if lines else output)
    if built.returncode != 0:
        pytest.fail(f"scripts/images.py failed (exit {built.returncode}):\n{output}")
    report = json.loads(report_path.read_text())
    uid = openshift_uid()
    _summary.extend(line.removeprefix("images: ") for line in output.splitlines())
    _summary.append(f"containers ran as UID {uid}, group 0")
    return Images(
        pman=report["images"]["pman"]["name"],
        publisher=report["images"]["pman-publisher"]["name"],
        report=report,
        podman=Podman(report["podman"]),
        uid=uid,
    )


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The base image, each image's size and build time: growth is seen in every run."""
    if _summary:
        terminalreporter.section("images")
        for line in _summary:
            terminalreporter.write_line(line)
