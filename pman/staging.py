"""An upload checked whole before anything is written: entries spooled, then uploaded.

While an archive's entries are read (:func:`stage`), each file is copied to one temporary
spool file with its MD5 and its name is checked against the others; only once every entry
was accepted are the files uploaded (:func:`upload`), several at once, under their final
names, each with its MD5 as ETag so that Swift stores nothing that differs. Swift has no
rename, so uploading under temporary names first would mean copying every object a second
time on the server; the spool costs local disk up to the size limit instead, and a refused,
oversized or interrupted upload leaves Swift untouched (no existing object is overwritten
by part of an archive that is then refused).
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import BinaryIO

from pman.archive import CHUNK, Entry, UnsafeEntry
from pman.errors import PayloadTooLarge
from pman.swift import Location, Store

MAX_OBJECT_NAME = 1024  # Swift's default max_object_name_length, in bytes
# Objects in flight at once, each over a kept-alive connection of its own: as many as the
# publisher uses. Small files cost Swift a few ms of work each; fewer in flight leave it idle.
UPLOAD_THREADS = 32


class LimitedBody:
    """The request body, read in chunks, refused once more than ``limit`` bytes arrived."""

    def __init__(self, stream: BinaryIO, limit: int) -> None:
        self._stream = stream
        self._limit = limit
        self.count = 0

    def read(self, size: int = CHUNK) -> bytes:
        data = self._stream.read(size if size >= 0 else CHUNK)
        self.count += len(data)
        if self.count > self._limit:
            raise PayloadTooLarge(f"the request body is larger than {self._limit} bytes")
        return data


@dataclass(frozen=True)
class Staged:
    """A file of an accepted upload, waiting in the spool."""

    name: str
    offset: int
    size: int
    md5: str


def stage(
    entries: Iterator[Entry], spool: BinaryIO, location: Location, *, limit: int
) -> list[Staged]:
    """Check every entry and copy its content to ``spool``; nothing goes to Swift here."""
    staged: list[Staged] = []
    names = _Names()
    total = 0
    for entry in entries:
        names.add(entry.name)
        if len(location.object_name(entry.name).encode()) > MAX_OBJECT_NAME:
            raise UnsafeEntry(entry.name, f"makes an object name longer than {MAX_OBJECT_NAME}")
        digest = hashlib.md5(usedforsecurity=False)
        offset, size = spool.tell(), 0
        for chunk in entry.chunks:
            size += len(chunk)
            total += len(chunk)
            if total > limit:
                raise PayloadTooLarge(f"the files in the upload add up to more than {limit} bytes")
            digest.update(chunk)
            spool.write(chunk)
        staged.append(Staged(entry.name, offset, size, digest.hexdigest()))
    spool.flush()
    return staged


class _Names:
    """The paths seen so far: each once, and never both a file and a directory."""

    def __init__(self) -> None:
        self._files: set[str] = set()
        self._dirs: set[str] = set()

    def add(self, name: str) -> None:
        if name in self._files:
            raise UnsafeEntry(name, "appears twice")
        if name in self._dirs:
            raise UnsafeEntry(name, "is both a file and a directory")
        parts = name.split("/")
        for end in range(1, len(parts)):
            parent = "/".join(parts[:end])
            if parent in self._files:
                raise UnsafeEntry(name, f"is inside {parent!r}, which is a file")
            self._dirs.add(parent)
        self._files.add(name)


def upload(
    store: Store,
    location: Location,
    staged: list[Staged],
    spool: int,
    *,
    done: Callable[[], None] = lambda: None,
) -> None:
    """PUT the staged files from the spool (a file descriptor), several at a time; ``done``
    is called after each."""
    with store.session() as swift:
        swift.ensure_container(location.container)
    pending: queue.SimpleQueue[Staged] = queue.SimpleQueue()
    for item in staged:
        pending.put(item)
    failed = threading.Event()

    def work() -> None:
        with store.session() as swift:
            while not failed.is_set():
                try:
                    item = pending.get_nowait()
                except queue.Empty:
                    return
                body = SpoolRegion(spool, item.offset, item.size)
                name = location.object_name(item.name)
                try:
                    swift.put_object(
                        location.container, name, body, length=item.size, etag=item.md5
                    )
                except BaseException:
                    failed.set()
                    raise
                done()

    workers = min(UPLOAD_THREADS, len(staged))
    with ThreadPoolExecutor(workers or 1, thread_name_prefix="pman-upload") as pool:
        futures = [pool.submit(work) for _ in range(workers)]
    for future in futures:
        future.result()


class SpoolRegion:
    """A seekable reader of one file's bytes in the spool (``os.pread``: no shared offset,
    so that several threads read the same spool at once)."""

    def __init__(self, fd: int, offset: int, size: int) -> None:
        self._fd, self._offset, self._size = fd, offset, size
        self._position = 0

    def read(self, size: int = -1) -> bytes:
        left = self._size - self._position
        wanted = left if size < 0 else min(size, left)
        data = os.pread(self._fd, wanted, self._offset + self._position) if wanted else b""
        self._position += len(data)
        return data

    def tell(self) -> int:
        return self._position

    def seek(self, position: int, whence: int = 0) -> int:
        if whence != 0:
            raise OSError("SpoolRegion only seeks from the start")
        self._position = position
        return position
