"""pman's start under gunicorn (the pman image's command), run on this machine, so that it
is checked where podman is not: with no Kubernetes configuration at all, or with invalid
settings, gunicorn exits before listening, with one line saying why and status 2; with a
configured cluster that does not answer, it serves /healthz while /readyz answers 503."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import requests

from devstack.processes import free_port
from tests.support.waiting import eventually

GUNICORN = [
    str(Path(sys.executable).with_name("gunicorn")),
    "--config",
    "python:pman.gunicorn_conf",
]


def environment(home: Path, **settings: str) -> dict[str, str]:
    """Nothing but a PATH, an empty HOME and ``settings``: no KUBECONFIG, no service account."""
    home.mkdir(exist_ok=True)
    return {"PATH": "/usr/bin:/bin", "HOME": str(home), "PMAN_WORKERS": "1", **settings}


def start(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(GUNICORN, env=env, capture_output=True, text=True, timeout=120)


def test_with_no_kubernetes_configuration_it_exits_with_one_line(tmp_path):
    env = environment(tmp_path / "home", PMAN_BIND=f"127.0.0.1:{free_port()}")
    done = start(env)
    assert done.returncode == 2, done.stderr
    ours = [line for line in done.stderr.splitlines() if line.startswith("pman: ")]
    assert len(ours) == 1, done.stderr
    assert ours[0].startswith("pman: no usable Kubernetes configuration (KUBECONFIG is not set")
    assert "Traceback" not in done.stderr
    assert "Booting worker" not in done.stderr


def test_with_invalid_settings_it_exits_naming_them(tmp_path):
    env = environment(tmp_path / "home", JOB_TTL_SECONDS="a day")
    done = start(env)
    assert done.returncode == 2, done.stderr
    ours = [line for line in done.stderr.splitlines() if line.startswith("pman: ")]
    assert len(ours) == 1, done.stderr
    assert "JOB_TTL_SECONDS" in ours[0]
    assert "Traceback" not in done.stderr


def test_with_a_dead_cluster_it_serves_healthz_and_readyz_is_503(tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: gone\n"
        "clusters: [{name: gone, cluster: {server: 'https://127.0.0.1:1'}}]\n"
        "users: [{name: pman, user: {token: unused}}]\n"
        "contexts: [{name: gone, context: {cluster: gone, user: pman}}]\n"
    )
    port = free_port()
    env = environment(tmp_path / "home", KUBECONFIG=str(kubeconfig), PMAN_BIND=f"127.0.0.1:{port}")
    log = tmp_path / "gunicorn.log"
    with log.open("w") as output:
        server = subprocess.Popen(GUNICORN, env=env, stdout=output, stderr=output)
    try:
        healthz = wait_for(f"http://127.0.0.1:{port}/healthz", server, log)
        assert healthz.status_code == 200
        readyz = requests.get(f"http://127.0.0.1:{port}/readyz", timeout=30)
        assert readyz.status_code == 503
        assert readyz.json()["message"] == "not ready: Kubernetes API unreachable"
    finally:
        server.terminate()
        server.communicate(timeout=30)
    # Where it looked goes to the log only.
    assert "https://127.0.0.1:1" in log.read_text()


def wait_for(
    url: str, server: subprocess.Popen, log: Path, *, timeout: float = 120
) -> requests.Response:

    def answer() -> requests.Response | None:
        if server.poll() is not None:
            raise AssertionError(f"gunicorn ended:\n{log.read_text()}")
        try:
            return requests.get(url, timeout=10)
        except (requests.ConnectionError, requests.Timeout):
            return None

    return eventually(answer, timeout=timeout, what=f"{url} answering")
