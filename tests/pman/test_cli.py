"""The ``pman`` command line: parsing and the warning about an open, unauthenticated API."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest
import requests

from pman.cli import build_parser, is_loopback, main, warn_if_exposed
from pman.settings import Settings
from tests.support.pman_server import unreachable_kubeconfig


def test_serve_defaults_to_loopback_port_5010():
    args = build_parser().parse_args(["serve"])
    assert (args.host, args.port) == ("127.0.0.1", 5010)


def test_serve_takes_host_and_port():
    args = build_parser().parse_args(["serve", "--host", "0.0.0.0", "--port", "8080"])
    assert (args.host, args.port) == ("0.0.0.0", 8080)


@pytest.mark.parametrize("port", ["http", "70000", "-1"])
def test_bad_port_is_refused(port, capsys):
    with pytest.raises(SystemExit) as caught:
        build_parser().parse_args(["serve", "--port", port])
    assert caught.value.code == 2
    assert "--port" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("localhost", True), ("::1", True), ("[::1]", True),
     ("0.0.0.0", False), ("192.168.1.5", False), ("pman.example.org", False)],
)  # fmt: skip
def test_loopback_addresses(host, loopback):
    assert is_loopback(host) is loopback


def test_warns_beyond_loopback_without_a_token(caplog):
    with caplog.at_level(logging.WARNING, logger="pman"):
        assert warn_if_exposed("0.0.0.0", Settings())
    assert "without PMAN_API_TOKEN" in caplog.text


def test_no_warning_with_a_token_or_on_loopback(caplog):
    with caplog.at_level(logging.WARNING, logger="pman"):
        assert not warn_if_exposed("0.0.0.0", Settings(api_token="t"))
        assert not warn_if_exposed("127.0.0.1", Settings())
    assert caplog.text == ""


def test_bad_settings_stop_serve_with_a_clear_message(monkeypatch, capsys):
    monkeypatch.setenv("JOB_LOGS_TAIL", "lots")
    assert main(["serve", "--port", "0"]) == 2
    assert "JOB_LOGS_TAIL='lots': expected a whole number" in capsys.readouterr().err


def test_a_missing_kubeconfig_stops_serve_with_a_clear_message(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    assert main(["serve", "--port", "0"]) == 2
    assert "no usable Kubernetes configuration" in capsys.readouterr().err


def test_gunicorn_warns_for_each_address_beyond_loopback(monkeypatch, caplog):
    from pman import gunicorn_conf

    monkeypatch.delenv("PMAN_API_TOKEN", raising=False)
    arbiter = SimpleNamespace(address=[("0.0.0.0", 5010), ("127.0.0.1", 5011), "/run/pman.sock"])
    with caplog.at_level(logging.WARNING, logger="pman"):
        gunicorn_conf.when_ready(arbiter)
    assert caplog.text.count("without PMAN_API_TOKEN") == 1


def test_pman_serve_answers_over_http_until_stopped(tmp_path):
    port = free_port()
    env = {**os.environ, "KUBECONFIG": str(unreachable_kubeconfig(tmp_path))}
    command = [sys.executable, "-m", "pman.cli", "serve", "--port", str(port)]
    with subprocess.Popen(command, env=env, stderr=subprocess.PIPE) as process:
        try:
            answer = wait_for(f"http://127.0.0.1:{port}/api/v1/")
            assert answer.json()["server_version"] == "6.0.0"
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=30)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str) -> requests.Response:
    deadline = time.monotonic() + 30
    while True:
        try:
            return requests.get(url, timeout=5)
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
