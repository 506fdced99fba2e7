"""The processes of the development stack: free ports, readiness over HTTP, and servers
started as child processes that end when the stack does.

Swift's servers, Keystone and pman are each started as a child process with its output in
a log file; a child gets SIGTERM when the process that started it dies, so an interrupted
stack leaves nothing running.
"""

from __future__ import annotations

import ctypes
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def die_with_parent() -> None:
    """For ``preexec_fn``: the child gets SIGTERM when its parent dies."""
    # The servers call setsid(), so without this a killed parent leaves them running.
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


def wait_for_http(
    url: str,
    *,
    timeout: float,
    error: type[Exception],
    process: subprocess.Popen | None = None,
) -> None:
    """Wait until `url` answers 200; `error` if the process ends or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (OSError, urllib.error.URLError):
            pass
        if process is not None and process.poll() is not None:
            raise error(f"{url}: the process exited with code {process.returncode}")
        if time.monotonic() > deadline:
            raise error(f"{url} did not answer within {timeout:.0f} s")
        time.sleep(0.05)


def terminate(popen: subprocess.Popen, *, timeout: float) -> None:
    """SIGTERM, then SIGKILL if it has not ended within `timeout` seconds."""
    popen.terminate()
    try:
        popen.wait(timeout)
    except subprocess.TimeoutExpired:
        popen.kill()
        popen.wait()


@dataclass
class ServerProcess:
    """A server run as a child process, its output appended to ``log``; ``pause`` and
    ``resume`` stop and continue it (SIGSTOP, SIGCONT)."""

    name: str
    argv: list[str]
    log: Path
    popen: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent,
            )

    def stop(self, *, timeout: float = 5.0) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        self.resume()
        terminate(self.popen, timeout=timeout)

    def pause(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGCONT)
