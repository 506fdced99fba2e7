"""``localcluster up``/``down`` and ``make demo``'s driver, run as a person runs them."""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import kubernetes
import pytest
import requests
from swiftclient.client import Connection

from devstack.up import job_group, prepare_host_storebase, read_env_file
from tests.support.pipeline import MANIFEST, SAMPLE_INPUT
from tests.support.waiting import eventually

LOCALCLUSTER = [sys.executable, "-m", "localcluster"]


def start_up(directory: Path, output: Path, *options: str) -> subprocess.Popen:
    command = [*LOCALCLUSTER, "up", "--dir", str(directory), "--pman-port", "0", *options]
    with open(output, "wb") as out:
        return subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def wait_for_env_file(
    process: subprocess.Popen, path: Path, output: Path, *, timeout: float = 60
) -> dict:

    def written() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"up exited with {process.returncode}: {output.read_text()}")
        return path.exists()

    eventually(written, timeout=timeout, interval=0.05, what="the env file")
    return read_env_file(path)


def refuses_connections(url: str) -> bool:
    parts = urlsplit(url)
    try:
        socket.create_connection((parts.hostname, parts.port), timeout=2).close()
    except OSError:
        return True
    return False


def run(*args: str, env: dict | None = None, cwd: Path | None = None, timeout: float = 120):
    return subprocess.run(
        list(args), env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture
def up_stack(tmp_path):
    """A running ``localcluster up`` and its env; killed if the test did not stop it."""
    directory, output = tmp_path / "stack", tmp_path / "up.out"
    process = start_up(directory, output)
    try:
        env = wait_for_env_file(process, directory / "env", output)
        yield directory, process, env, output
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_up_wires_swift_the_cluster_and_pman_and_down_stops_them(up_stack, tmp_path):
    directory, process, env, output = up_stack
    assert "Try it from another shell:" in output.read_text()
    assert {"KUBECONFIG", "ST_AUTH", "ST_USER", "ST_KEY", "SWIFT_CREDENTIALS_FILE", "PMAN_URL"} <= (
        set(env)
    )
    shell = {**os.environ, **env}

    # What a person does after `. .state/env`: upload with the publisher, submit with curl.
    done = run(
        sys.executable, "-m", "publisher", "upload", "--credentials",
        env["SWIFT_CREDENTIALS_FILE"], str(SAMPLE_INPUT), "swift://key-by-hand/incoming",
        env=shell,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    swift = Connection(env["ST_AUTH"], env["ST_USER"], env["ST_KEY"], retries=0)
    uploaded = {obj["name"] for obj in swift.get_container("key-by-hand", prefix="incoming/")[1]}
    assert len(uploaded - {f"incoming/{MANIFEST}"}) == len(list(SAMPLE_INPUT.rglob("*.*")))

    with kubernetes.config.new_client_from_config(config_file=env["KUBECONFIG"]) as api:
        secret = kubernetes.client.CoreV1Api(api).read_namespaced_secret(
            "swift-credentials", "default"
        )
    stored = base64.b64decode(secret.data["swift-credentials.cfg"])
    assert stored == Path(env["SWIFT_CREDENTIALS_FILE"]).read_bytes()

    assert env["PMAN_URL"].endswith("/api/v1/")
    assert requests.get(env["PMAN_URL"], timeout=10).json()["storage_type"] == "swift"

    # The client commands `up` printed, run as printed.
    printed = output.read_text().split("# with pman's client commands:\n")[1].split("\n\n")[0]
    script = f". {directory / 'env'}\nset -e\n{printed}\n"
    # The env file puts the venv's commands on PATH: the shell starts with a PATH without.
    shell["PATH"] = os.pathsep.join(
        p for p in shell["PATH"].split(os.pathsep) if Path(p) != Path(sys.executable).parent
    )
    done = run("sh", "-c", script, env=shell, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "finishedSuccessfully" in done.stdout
    assert "wrote counts.tsv, words.tsv, summary.json" in done.stdout
    assert {p.name for p in (tmp_path / "try-1-output").iterdir()} >= {"summary.json"}

    again = run(*LOCALCLUSTER, "up", "--dir", str(directory))
    assert again.returncode == 1
    assert "already running" in again.stderr

    stopped = run(*LOCALCLUSTER, "down", "--dir", str(directory))
    assert stopped.returncode == 0, stopped.stderr
    assert process.wait(timeout=30) == 0
    assert not (directory / "env").exists()
    assert refuses_connections(env["PMAN_URL"])
    assert refuses_connections(env["ST_AUTH"])
    assert run(*LOCALCLUSTER, "down", "--dir", str(directory)).returncode == 1


@pytest.mark.parametrize("storage", ["host", "kubernetes_pvc"])
def test_up_runs_pman_over_a_storebase_a_pfcon_style_client_uses(tmp_path, storage):
    directory, output, storebase = tmp_path / "stack", tmp_path / "up.out", tmp_path / "data"
    process = start_up(directory, output, "--storage", storage, "--storebase", str(storebase))
    try:
        env = wait_for_env_file(process, directory / "env", output)
        assert env["STOREBASE_MOUNT"] == str(storebase)
        assert env["STORAGE_TYPE"] == storage
        info = requests.get(env["PMAN_URL"], timeout=10).json()
        assert info["storage_type"] == storage
        shell = {**os.environ, **env}
        printed = output.read_text().split("Try it from another shell:\n")[1]
        printed = printed.split("\n\nStop with Ctrl-C")[0]
        done = run("sh", "-c", f"set -e\n{printed}\n", env=shell, cwd=tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "finishedSuccessfully" in done.stdout
        outgoing = storebase / "key-try-1" / "outgoing"
        assert {"counts.tsv", "words.tsv", "summary.json"} <= {p.name for p in outgoing.iterdir()}
        if storage == "host" and os.geteuid() == 0:
            # Prepared for the jobs' UIDs, as the operator of a hostPath must.
            info = storebase.stat()
            assert (info.st_gid, info.st_mode & 0o2070) == (0, 0o2070)
            assert "made group 0, setgid and group-writable" in output.read_text()
        push = run(sys.executable, "-m", "pman.cli", "push", "x-1", str(SAMPLE_INPUT), env=shell)
        assert push.returncode == 3
        assert f"409 pman runs with STORAGE_TYPE={storage}" in push.stderr
        stopped = run(*LOCALCLUSTER, "down", "--dir", str(directory))
        assert stopped.returncode == 0, stopped.stderr
        assert process.wait(timeout=30) == 0
        # The storeBase is the client's: it outlives the stack.
        assert (outgoing / "summary.json").exists()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_the_jobs_group_is_container_user_s_fixed_gid_else_0():
    assert [job_group(user) for user in ("", "1000:", ":1000", "2000:3000", "5-9:10-20")] == [
        0,
        0,
        1000,
        3000,
        None,
    ]


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a directory to a group needs root")
def test_a_host_storebase_is_prepared_and_up_says_how_to_prepare_what_it_held(tmp_path):
    fresh, held = tmp_path / "fresh", tmp_path / "held"
    fresh.mkdir(mode=0o700)
    (held / "key-1" / "outgoing").mkdir(parents=True)
    (held / "key-1" / "outgoing").chmod(0o755)
    said = prepare_host_storebase(fresh, 0)
    assert said == ["made group 0, setgid and group-writable, for the jobs' UIDs"]
    assert (fresh.stat().st_gid, fresh.stat().st_mode & 0o7777) == (0, 0o2770)
    said = prepare_host_storebase(held, 3000)
    assert "keeps its modes" in said[1]
    # The command it prints, run as printed, makes the rest usable by the group too.
    done = run("sh", "-c", " ".join(line.strip() for line in said[2:]))
    assert done.returncode == 0, done.stderr
    info = (held / "key-1" / "outgoing").stat()
    assert (info.st_gid, info.st_mode & 0o7777) == (3000, 0o2775)
    unshared = tmp_path / "unshared"
    unshared.mkdir(mode=0o755)
    assert "world-writable" in prepare_host_storebase(unshared, None)[0]
    assert unshared.stat().st_mode & 0o777 == 0o777


def test_up_refuses_a_storebase_without_a_volume_storage(tmp_path):
    done = run(*LOCALCLUSTER, "up", "--dir", str(tmp_path), "--storebase", str(tmp_path))
    assert done.returncode == 2
    assert "--storebase needs --storage host or kubernetes_pvc" in done.stderr


def test_the_demo_runs_a_job_end_to_end_and_says_so(tmp_path):
    done = run(sys.executable, "-m", "devstack.demo", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "FAIL" not in done.stdout
    for text in (
        "notstarted",
        "started",
        "finishedSuccessfully",
        "The processor's log:",
        "wordcount 1.0.0 (ds): /share/incoming",
        "Published outputs in swift://key-wordcount-demo/outgoing:",
        '"exit_code": 0',
        "ok   the job ended finishedSuccessfully",
        "the demo ran end to end",
    ):
        assert text in done.stdout


def test_the_demo_exits_non_zero_when_a_part_fails(tmp_path):
    # pman refuses to start with an invalid setting, so the stack never comes up.
    env = {**os.environ, "JOB_LOGS_TAIL": "many"}
    done = run(sys.executable, "-m", "devstack.demo", env=env, cwd=tmp_path)
    assert done.returncode == 1
    assert "the demo failed: pman:" in done.stderr
    assert "the demo FAILED" in done.stdout
