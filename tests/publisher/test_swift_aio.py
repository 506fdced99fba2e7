"""The Swift all-in-one the suite runs against: it answers, stores, and survives a restart."""

import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from swiftclient.client import Connection
from swiftclient.exceptions import ClientException

# Every test here runs a real Swift, some of them their own.
pytestmark = pytest.mark.integration


def test_swift_server_stores_and_lists_objects(swift_server, swift_container):
    connection = swift_server.connection()
    connection.put_container(swift_container)
    connection.put_object(swift_container, "a/b.txt", b"hello")
    _, listing = connection.get_container(swift_container)
    assert [(o["name"], o["bytes"]) for o in listing] == [("a/b.txt", 5)]


def test_swift_proxy_restart_keeps_data(swift_server, swift_container):
    connection = swift_server.connection()
    connection.put_container(swift_container)
    connection.put_object(swift_container, "kept", b"data")
    swift_server.restart("proxy")
    _, body = swift_server.connection().get_object(swift_container, "kept")
    assert body == b"data"


def test_swift_rejects_a_wrong_key(swift_server):
    connection = Connection(swift_server.auth_url, swift_server.user, "wrong", retries=0)
    with pytest.raises(ClientException) as caught:
        connection.head_account()
    assert caught.value.http_status == 401


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if text.encode() in (proc / "cmdline").read_bytes():
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def _children(pid: int) -> dict[int, bytes]:
    """{pid: command line} of the processes whose parent is `pid`."""
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if ppid == pid:
                found[int(proc.name)] = (proc / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
    return found


def _program(cmdline: bytes) -> bytes:
    """The module a `python -m` command runs, or the program itself."""
    argv = cmdline.split(b"\0")
    return argv[2] if len(argv) > 2 and argv[1] == b"-m" else argv[0]


def _still_running(processes: dict[int, bytes]) -> list[bytes]:
    running = []
    for pid, cmdline in processes.items():
        try:
            if Path(f"/proc/{pid}/cmdline").read_bytes() == cmdline:
                running.append(cmdline)
        except OSError:
            continue
    return running


# The documented console script, and the module it runs.
CONSOLE_SCRIPT = [str(Path(sys.executable).with_name("localcluster")), "swift"]
MODULE = [sys.executable, "-m", "devstack.swiftaio"]


@pytest.mark.parametrize(
    ("command", "signum"),
    [(CONSOLE_SCRIPT, signal.SIGINT), (MODULE, signal.SIGTERM)],
    ids=["localcluster-swift-SIGINT", "module-SIGTERM"],
)
def test_localcluster_swift_command_serves_until_signalled(tmp_path, command, signum):
    directory = tmp_path / "aio"
    process = subprocess.Popen(
        [*command, "--dir", str(directory)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = process.stdout.readline().strip()
        assert first.startswith("export ST_AUTH=http://127.0.0.1:"), process.stderr.read()
        env = dict(item.split("=", 1) for item in first.removeprefix("export ").split())
        connection = Connection(env["ST_AUTH"], env["ST_USER"], env["ST_KEY"], retries=0)
        connection.put_container("c")
        assert connection.head_container("c")["x-container-object-count"] == "0"
        started = _children(process.pid)
        names = sorted(_program(cmd) for cmd in started.values())
        assert len(started) == 5, names  # the 4 servers and memcached
        assert any(name.endswith(b"memcached") for name in names), names
    finally:
        process.send_signal(signum)
        assert process.wait(timeout=30) == 0
    assert _still_running(started) == []
    assert _processes_mentioning(str(directory)) == []
    port = int(env["ST_AUTH"].split(":")[2].split("/")[0])
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5)


def test_swift_with_worker_processes_serves_and_stops_them_all(tmp_path):
    from devstack.swiftaio import SwiftAIO

    directory = tmp_path / "aio-workers"
    with SwiftAIO(directory, workers=2) as swift:
        connection = swift.connection()
        connection.put_container("c")
        connection.put_object("c", "o", b"data")
        before = swift.cpu_seconds()
        for _ in range(50):
            assert connection.get_object("c", "o")[1] == b"data"
        after = swift.cpu_seconds()
        # The requests were served by workers: their CPU time counts for their server.
        assert after["proxy"] - before["proxy"] > 0.02
        assert after["object"] > before["object"]
        # each of the 4 servers: its first process and 2 workers
        assert len(_processes_mentioning(str(directory))) == 4 * 3
    assert _processes_mentioning(str(directory)) == []
