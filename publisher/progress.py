"""Progress of a transfer: counters shared by the worker threads, and periodic lines.

A line such as ``upload: 120/2000 files, 35.2/512.0 MiB, 48.1 MiB/s`` goes to the log
every `interval` seconds while a transfer runs, so a long transfer is visibly alive.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

log = logging.getLogger("publisher")

MIB = 1 << 20


@dataclass
class Progress:
    """Files and bytes done out of a known total; thread-safe."""

    action: str
    total_files: int = 0
    total_bytes: int = 0
    files: int = 0
    bytes: int = 0
    started: float = field(default_factory=time.monotonic)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, *, files: int = 0, nbytes: int = 0) -> None:
        with self._lock:
            self.files += files
            self.bytes += nbytes

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-6)
        return (
            f"{self.action}: {self.files}/{self.total_files} files, "
            f"{self.bytes / MIB:.1f}/{self.total_bytes / MIB:.1f} MiB, "
            f"{self.bytes / MIB / elapsed:.1f} MiB/s"
        )


class Reporter:
    """Logs `progress.line()` every `interval` seconds until stopped (a context manager)."""

    def __init__(self, progress: Progress, *, interval: float = 5.0) -> None:
        self.progress = progress
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="progress", daemon=True)

    def __enter__(self) -> Progress:
        self.progress.started = time.monotonic()
        if self.interval > 0:
            self._thread.start()
        return self.progress

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()  # so that no progress line comes after the summary

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            log.info("%s", self.progress.line())
