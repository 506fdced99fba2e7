"""The ``localcluster`` command: serve, stop on signals, leave nothing behind, example, swift."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import kubernetes
import pytest

from devstack.examplejob import ExampleRun
from tests.support.kube import container, is_running, job_manifest, wait_for_pod
from tests.support.names import unique_name
from tests.support.waiting import eventually

# These start clusters of their own.
pytestmark = [pytest.mark.fault, pytest.mark.integration]


class Serve:
    """``python -m localcluster serve`` in a subprocess, with its log lines."""

    def __init__(self, tmp_path: Path, *extra: str) -> None:
        self.kubeconfig = tmp_path / "kubeconfig"
        self.audit = tmp_path / "audit.log"
        command = [
            sys.executable,
            "-m",
            "localcluster",
            "serve",
            "--kubeconfig",
            str(self.kubeconfig),
            "--tls",
            "--state-dir",
            str(tmp_path / "state"),
            "--audit-log",
            str(self.audit),
            *extra,
        ]
        self.process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.log: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.put(line)
        self.lines.put("")

    def wait_for(self, text: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=deadline - time.monotonic())
            except queue.Empty:
                break
            self.log.append(line)
            if text in line:
                return line
            if line == "":
                break
        raise AssertionError(f"{text!r} not logged; log so far: {''.join(self.log)}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def _processes_with(marker: str) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as handle:
                if marker.encode() in handle.read():
                    found.append(int(name))
        except OSError:
            continue
    return found


def _gone(marker: str, timeout: float = 10) -> bool:
    try:
        return eventually(
            lambda: not _processes_with(marker), timeout=timeout, interval=0.05, what="gone"
        )
    except AssertionError:
        return False


def _start_sleeper(kubeconfig: Path, marker: str) -> None:
    with kubernetes.config.new_client_from_config(config_file=str(kubeconfig)) as api:
        batch, core = kubernetes.client.BatchV1Api(api), kubernetes.client.CoreV1Api(api)
        # The inner shell is not the container's first process: only the janitor ends it.
        script = f"sh -c 'sleep 300; echo {marker}-inner' & sleep 301 & wait; echo {marker}"
        batch.create_namespaced_job("default", job_manifest("sleeper", [container("main", script)]))
        wait_for_pod(core, "default", "sleeper", is_running)


@pytest.fixture
def serve(tmp_path):
    server = Serve(tmp_path)
    yield server
    server.stop()


def test_serve_writes_a_kubeconfig_the_client_loads(serve):
    serve.wait_for("kubeconfig written")
    with kubernetes.config.new_client_from_config(config_file=str(serve.kubeconfig)) as api:
        assert api.configuration.host.startswith("https://127.0.0.1:")
        assert kubernetes.client.CoreV1Api(api).list_namespaced_pod("default").items == []
    records = [json.loads(line) for line in serve.audit.read_text().splitlines()]
    assert records[-1]["verb"] == "list"
    assert records[-1]["user"]["username"] == "admin"
    assert records[-1]["objectRef"]["resource"] == "pods"


def test_example_job_against_serve_tls(serve, capsys):
    serve.wait_for("kubeconfig written")
    with kubernetes.config.new_client_from_config(config_file=str(serve.kubeconfig)) as api:
        assert ExampleRun(api).run()
    assert "ok   side exited 0 after seeing 'main exit 3'" in capsys.readouterr().out


def test_sigterm_stops_cleanly_ending_every_process(serve):
    serve.wait_for("kubeconfig written")
    marker = unique_name("marker")
    _start_sleeper(serve.kubeconfig, marker)
    assert _processes_with(marker)
    serve.process.send_signal(signal.SIGTERM)
    assert serve.process.wait(timeout=30) == 0
    serve.wait_for("local cluster stopped")
    assert _gone(marker)


def test_a_killed_cluster_leaves_nothing_running(serve):
    serve.wait_for("kubeconfig written")
    marker = unique_name("marker")
    _start_sleeper(serve.kubeconfig, marker)
    serve.process.kill()
    serve.process.wait()
    assert _gone(marker)


def test_bad_port_is_refused(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "localcluster",
            "serve",
            "--kubeconfig",
            str(tmp_path / "k"),
            "--port",
            "x",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "--port" in result.stderr
    assert not (tmp_path / "k").exists()


def test_swift_without_its_module_says_so():
    program = (
        "import sys; sys.modules['devstack.swiftaio'] = None\n"
        "from localcluster.cli import main\n"
        "sys.exit(main(['swift', '--help']))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert "devstack.swiftaio is missing" in result.stderr


def test_example_runs_and_says_what_it_is():
    result = subprocess.run(
        [sys.executable, "-m", "localcluster", "example"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "the local cluster's own example Job" in result.stdout
    assert "main exit 3" in result.stdout
    assert "the example behaved as expected" in result.stdout
