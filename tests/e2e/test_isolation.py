"""A job's processor under ``localcluster up`` (``make serve``) reaches nothing of the machine.

The stack runs as a person runs it, in a directory any user may traverse (as ``.state`` in
a checkout is), and a job submitted to its pman runs a processor that tries to read what
the machine holds: the stack's Swift credentials file, its env file, the kubeconfig, the
Swift server's data, the TLS key and the other pods' volumes in the cluster's state
directory, the publish sidecar's Swift credentials through ``/proc``, the environment of
other processes. It also prints the identity it runs as.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from devstack.up import read_env_file
from tests.support.isolation import leaked, probe_command, probe_report
from tests.support.names import unique_name
from tests.support.rest import PmanClient
from tests.support.waiting import eventually

LOCALCLUSTER = [sys.executable, "-m", "localcluster"]


@pytest.fixture
def stack() -> Iterator[tuple[Path, dict[str, str], str]]:
    """A running ``localcluster up``: its directory, its env and what it printed."""
    top = Path(tempfile.mkdtemp(prefix="lc-stack-"))
    top.chmod(0o755)
    directory, output = top / "state", top / "up.out"
    with open(output, "wb") as out:
        process = subprocess.Popen(
            [*LOCALCLUSTER, "up", "--dir", str(directory), "--pman-port", "0"],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:

        def started() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"up exited with {process.returncode}: {output.read_text()}")
            return (directory / "env").exists() and "Stop with" in output.read_text()

        eventually(started, timeout=60, interval=0.05, what="localcluster up")
        yield directory, read_env_file(directory / "env"), output.read_text()
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        shutil.rmtree(top, ignore_errors=True)


def test_a_processor_reads_nothing_of_the_machine(stack):
    directory, env, printed = stack
    credentials = Path(env["SWIFT_CREDENTIALS_FILE"])
    assert credentials.parent == directory
    secret_line = next(line for line in credentials.read_text().splitlines() if "password" in line)
    kubeconfig = yaml.safe_load(Path(env["KUBECONFIG"]).read_text())
    admin_token = kubeconfig["users"][0]["user"]["token"]
    state = directory / "cluster"
    checks = [
        ("credentials-file", "read", str(credentials), secret_line),
        ("env-file", "read", str(directory / "env"), env["ST_KEY"]),
        ("kubeconfig", "read", env["KUBECONFIG"], admin_token),
        ("tls-key", "read", str(state / "server.key"), "PRIVATE KEY"),
        ("swift-data", "list", str(directory / "swift"), "data"),
        (
            "pods-credentials",
            "read-glob",
            f"{state}/pods/*/volumes/*/swift-credentials.cfg",
            secret_line,
        ),
        ("pods-tokens", "read-glob", f"{state}/pods/*/volumes/*/token", "."),
        (
            "sidecar-credentials",
            "read-glob",
            "/proc/[0-9]*/root/etc/swift/swift-credentials.cfg",
            secret_line,
        ),
        ("environments", "read-glob", "/proc/[0-9]*/environ", f"ST_KEY={env['ST_KEY']}"),
        ("processes", "processes", "", ""),
    ]
    pman = PmanClient(env["PMAN_URL"].removesuffix("/api/v1/"))
    jid = unique_name("isolation")
    command = probe_command(checks)
    body = {
        "jid": jid,
        "image": "python:3.11-slim",
        "entrypoint": command[:3],
        "args": command[3:],
        "auid": "isolation",
        "number_of_workers": 1,
        "cpu_limit": 1000,
        "memory_limit": 200,
        "gpu_limit": 0,
        # An fs plugin: an empty input is fine.
        "type": "fs",
        "input_dir": f"key-{jid}/incoming",
        "output_dir": f"key-{jid}/outgoing",
    }
    pman.submit(body)
    job, _ = pman.wait(jid, timeout=120)
    report = probe_report(job["logs"])

    breaches = leaked(report)
    assert not breaches, "the processor read:\n" + "\n".join(
        f"  {name}: {what!r}" for name, what in sorted(breaches.items())
    )
    assert len(report["checks"]["processes"]["data"].split()) <= 3, report["checks"]["processes"]
    from localcluster.node.security import arbitrary_uid

    assert (report["uid"], report["gid"]) == (arbitrary_uid("default"), 0)
    assert job["status"] == "finishedSuccessfully", job
    # What `make serve` says about it: a paragraph of its own.
    said = printed.split("Isolation:", 1)[1].split("\n\n", 1)[0]
    said = " ".join(said.split())
    assert f"UID {arbitrary_uid('default')} in namespace default" in said
    assert f"hidden from them: {directory}" in said
    assert "readOnly mounts are read-only" in said
