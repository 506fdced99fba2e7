"""Reading and writing the local directory (/share) without ever leaving it.

Every path is opened component by component relative to an open directory, with
O_NOFOLLOW: a symbolic link anywhere in a path (even one swapped in after the scan) is
refused rather than followed, so nothing outside the directory is read or written.
"""

from __future__ import annotations

import os
import socket
import stat
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC

WRITE_PIECE = 32 << 10
"""Bytes handed to the kernel per write. Downloading 1 GiB into a virtual machine that
hands free memory back to its host (free page reporting) cost 2.1 to 2.6 s of system time
with 256 KiB writes and 0.6 to 1.0 s with 32 KiB ones (bench/README.md), most of it first
touches of memory the host had taken back. This fits how recent kernels cache a file
(ext4, XFS): in folios as large as the writes that fill them, taken up to 32 KiB from
per-CPU lists of recently freed memory, and above that from the large free blocks, the
ones reported to the host."""


class UnsafePath(Exception):
    """A path component is a symbolic link or not what it should be."""


@dataclass(frozen=True)
class LocalFile:
    """A regular file found under the root: its relative POSIX path and size."""

    path: str
    size: int


@dataclass(frozen=True)
class Skipped:
    """Something under the root that is not uploaded, and why."""

    path: str
    reason: str


def scan_tree(root: Path) -> tuple[list[LocalFile], list[Skipped]]:
    """Every regular file under `root` (sorted), and everything skipped with a reason."""
    files: list[LocalFile] = []
    skipped: list[Skipped] = []
    pending = [""]
    while pending:
        rel_dir = pending.pop()
        with os.scandir(root / rel_dir if rel_dir else root) as entries:
            for entry in entries:
                rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
                kind = _kind(entry)
                if kind == "dir":
                    pending.append(rel)
                elif kind == "file":
                    files.append(LocalFile(rel, entry.stat(follow_symlinks=False).st_size))
                else:
                    skipped.append(Skipped(printable(rel), kind))
    files.sort(key=lambda f: f.path)
    skipped.sort(key=lambda s: s.path)
    return files, skipped


def _kind(entry: os.DirEntry) -> str:
    if entry.is_symlink():
        return "symbolic link (not followed)"
    if entry.is_dir(follow_symlinks=False):
        return "dir"
    if entry.is_file(follow_symlinks=False):
        return "file"
    return "special file (device, socket or FIFO)"


def printable(path: str) -> str:
    """A path as text that can be shown and stored as JSON: bytes that are not UTF-8
    (file names are bytes to the kernel) as ``\\xNN``."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


class Root:
    """An open directory that files are read from or written to, never outside it."""

    def __init__(self, path: Path, *, create: bool = False) -> None:
        if create:
            path.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

    def close(self) -> None:
        os.close(self.fd)

    def __enter__(self) -> Root:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _dir(self, parts: list[str], *, create: bool) -> Iterator[int]:
        fd = os.dup(self.fd)
        try:
            for part in parts:
                if create:
                    with suppress(FileExistsError):
                        os.mkdir(part, 0o755, dir_fd=fd)
                try:
                    new = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except OSError as exc:
                    raise UnsafePath(f"{part}: not a plain directory ({exc.strerror})") from exc
                os.close(fd)
                fd = new
            yield fd
        finally:
            os.close(fd)

    def open_file(self, rel: str) -> int:
        """Open a regular file for reading; refuses links and special files anywhere."""
        *parents, name = rel.split("/")
        with self._dir(parents, create=False) as dir_fd:
            try:
                fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
            except OSError as exc:
                raise UnsafePath(f"{rel}: cannot open safely ({exc.strerror})") from exc
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise UnsafePath(f"{rel}: no longer a regular file")
        os.set_blocking(fd, True)
        return fd

    def partial_file(self, rel: str, size: int) -> PartialFile:
        """A temporary file of `size` bytes beside `rel`; `commit()` renames it into place."""
        *parents, name = rel.split("/")
        with self._dir(parents, create=True) as dir_fd:
            temp = f".{name[:200]}.partial-{uuid.uuid4().hex[:8]}"
            flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            fd = os.open(temp, flags, 0o644, dir_fd=dir_fd)
            return PartialFile(os.dup(dir_fd), temp, name, fd, size)

    def make_dir(self, rel: str) -> None:
        with self._dir([p for p in rel.split("/") if p], create=True):
            pass


class PartialFile:
    """A file being written (possibly by several threads at their own offsets)."""

    def __init__(self, dir_fd: int, temp: str, name: str, fd: int, size: int) -> None:
        self.dir_fd, self.temp, self.name, self.fd = dir_fd, temp, name, fd
        os.ftruncate(fd, size)

    def write_at(self, offset: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.pwrite(self.fd, view[:WRITE_PIECE], offset)
            offset += written
            view = view[written:]

    def commit(self) -> None:
        """Move the finished file into place (a link there is replaced, never followed)."""
        try:
            os.close(self.fd)
            os.replace(self.temp, self.name, src_dir_fd=self.dir_fd, dst_dir_fd=self.dir_fd)
        finally:
            os.close(self.dir_fd)

    def abort(self) -> None:
        try:
            os.close(self.fd)
            os.unlink(self.temp, dir_fd=self.dir_fd)
        except OSError:
            pass
        finally:
            os.close(self.dir_fd)


class FileSlice:
    """A read-only view of `length` bytes of an open file from `offset` (for request bodies)."""

    def __init__(self, fd: int, offset: int, length: int) -> None:
        self.fd, self.offset, self.remaining = fd, offset, length

    def fileno(self) -> int:
        return self.fd

    def send_to(self, sock: socket.socket) -> None:
        """Send the whole slice with sendfile(2): the kernel copies it, Python never sees it."""
        sent = sock.sendfile(self, self.offset, self.remaining)
        if sent != self.remaining:
            raise UnsafePath(
                f"file shrank while being uploaded ({self.remaining - sent} bytes missing)"
            )
        self.offset += sent
        self.remaining = 0

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0 or size > self.remaining:
            size = self.remaining
        if size == 0:
            return b""
        data = os.pread(self.fd, size, self.offset)
        if not data:
            raise UnsafePath(f"file shrank while being uploaded ({self.remaining} bytes missing)")
        self.offset += len(data)
        self.remaining -= len(data)
        return data
