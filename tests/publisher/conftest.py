"""Helpers for the publisher's tests: run the real CLI against the real Swift server."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass

import pytest

from localcluster.swift import SwiftAIO

PUBLISHER = [sys.executable, "-m", "publisher"]


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The test process environment without any Swift/OpenStack/Kubernetes settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ST_", "OS_", "KUBE", "POD_"))}
    env.update(extra or {})
    return env


def run_publisher(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> Run:
    """Run `python -m publisher ARGS` and return its exit code and output."""
    done = subprocess.run(
        [*PUBLISHER, *args],
        env=clean_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Run(done.returncode, done.stdout, done.stderr)


@pytest.fixture
def swift_env(swift_server: SwiftAIO) -> dict[str, str]:
    """ST_* variables for the session's Swift server."""
    return swift_server.environment()
