"""Archives, read with every entry checked and written as streams; shared by pman's data
routes and its command-line client, with no I/O of its own beyond the streams it is given.

Reading (:func:`tar_entries`, :func:`zip_entries`, :func:`multipart_entries`) yields the
regular files of an archive one at a time, each with a name checked by :func:`safe_name`;
a link, a special file, a name that would leave the destination, a path given twice or as
both a file and a directory, or a zip entry that cannot be read (encrypted, or compressed
in a way zipfile does not know) raises :class:`UnsafeEntry` naming the entry, a malformed
archive :class:`ArchiveError`. Each entry's chunks must be consumed before the next entry
is asked for.

Writing (:func:`tar_stream`, :func:`zip_stream`) turns :class:`OutFile` items into the
chunks of a tar (optionally gzip-compressed) or zip file, pulling each file's content
only as the consumer asks for more, so that nothing larger than a chunk is held.
"""

from __future__ import annotations

import stat
import tarfile
import time
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO

from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.http import parse_options_header
from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder, NeedData

CHUNK = 1 << 20
BLOCK = tarfile.BLOCKSIZE
RECORD = tarfile.RECORDSIZE
# A multipart part's headers are a few hundred bytes; this bounds what a malformed body
# can make the decoder buffer while it looks for the end of them.
MAX_PART_HEADERS = 64 * 1024
# Coalesce the small pieces (tar headers, zip records) into writes of about this size.
WRITE_SIZE = 256 * 1024

Read = Callable[[int], bytes]
# Bit 0 of a zip entry's general purpose flags: the entry is encrypted.
ENCRYPTED = 0x1
# The compression methods zipfile reads (with the zlib, bz2 and lzma modules).
ZIP_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}


class ArchiveError(ValueError):
    """The body is not a readable archive of the declared kind."""


class UnsafeEntry(ValueError):
    """An entry pman refuses: its name, or what it is (a link, a device...)."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"entry {name!r} {problem}")
        self.name = name
        self.problem = problem


@dataclass
class Entry:
    """One regular file of an archive: its checked relative path and its content."""

    name: str
    chunks: Iterator[bytes]


@dataclass(frozen=True)
class OutFile:
    """A file to write into an archive; ``open`` gives its content in chunks."""

    name: str
    size: int
    open: Callable[[], Iterator[bytes]]


def safe_name(name: str, *, directory: bool = False) -> str:
    """``name`` as a relative path that stays inside the destination; raises UnsafeEntry.

    A leading ``./`` (as ``tar -C dir .`` writes) is dropped, and for a directory a
    trailing ``/``; ``""`` then names the destination itself.
    """
    if "\x00" in name:
        raise UnsafeEntry(name, "has a NUL character in its name")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise UnsafeEntry(name, "has a name that is not valid UTF-8") from None
    if name.startswith("/"):
        raise UnsafeEntry(name, "has an absolute path")
    path = name
    while path.startswith("./"):
        path = path[2:]
    if directory:
        path = path.rstrip("/") if path.rstrip("/") != "." else ""
    if not path:
        if directory:
            return ""
        raise UnsafeEntry(name, "has an empty name")
    for segment in path.split("/"):
        if segment == "..":
            raise UnsafeEntry(name, "leaves the destination ('..')")
        if segment == ".":
            raise UnsafeEntry(name, "has a '.' segment in its path")
        if not segment:
            raise UnsafeEntry(name, "has an empty segment in its path ('//' or a trailing '/')")
    return path


class Paths:
    """The paths of an archive's entries so far: a file appears once, and never where a
    directory is (nor a directory where a file is), since no directory could hold both."""

    def __init__(self) -> None:
        self._files: set[str] = set()
        self._dirs: set[str] = set()

    def file(self, path: str, entry: str) -> str:
        if path in self._files:
            raise UnsafeEntry(entry, "appears twice")
        if path in self._dirs:
            raise UnsafeEntry(entry, "is both a file and a directory")
        self._parents(path, entry)
        self._files.add(path)
        return path

    def directory(self, path: str, entry: str) -> None:
        if path in self._files:
            raise UnsafeEntry(entry, "is both a file and a directory")
        if path:
            self._parents(path, entry)
            self._dirs.add(path)

    def _parents(self, path: str, entry: str) -> None:
        parts = path.split("/")
        for end in range(1, len(parts)):
            parent = "/".join(parts[:end])
            if parent in self._files:
                raise UnsafeEntry(entry, f"is inside {parent!r}, which is a file")
            self._dirs.add(parent)


# -- reading -------------------------------------------------------------------------------
def tar_entries(stream: BinaryIO) -> Iterator[Entry]:
    """The files of a tar stream, plain or compressed (gzip, bzip2, xz), read in one pass."""
    what = "not a readable tar archive (plain or compressed)"
    paths = Paths()
    with _reading(what), tarfile.open(fileobj=stream, mode="r|*") as archive:
        for member in archive:
            if member.isdir():
                paths.directory(safe_name(member.name, directory=True), member.name)
                continue
            _check_tar_kind(member)
            name = paths.file(safe_name(member.name), member.name)
            reader = archive.extractfile(member)
            assert reader is not None  # a regular file always has a reader
            yield Entry(name, _read_chunks(reader.read, "a truncated or corrupt tar archive"))


@contextmanager
def _reading(what: str) -> Iterator[None]:
    try:
        yield
    except (tarfile.TarError, zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError) as e:
        raise ArchiveError(f"{what}: {e}") from None
    except (NotImplementedError, RuntimeError) as error:
        # zipfile's answer to encrypted entries and compression methods it cannot read.
        raise ArchiveError(f"{what}: {error}") from None


def _check_tar_kind(member: tarfile.TarInfo) -> None:
    if member.issym():
        raise UnsafeEntry(member.name, f"is a symbolic link (to {member.linkname!r})")
    if member.islnk():
        raise UnsafeEntry(member.name, f"is a hard link (to {member.linkname!r})")
    if member.ischr() or member.isblk():
        raise UnsafeEntry(member.name, "is a device file")
    if member.isfifo():
        raise UnsafeEntry(member.name, "is a FIFO")
    if not member.isreg():
        raise UnsafeEntry(member.name, f"has an unsupported entry type {member.type!r}")


def zip_entries(file: str | BinaryIO) -> Iterator[Entry]:
    """The files of a zip file (a path or a seekable file), every entry checked (from the
    central directory) before the first is read."""
    with _reading("not a readable zip file"), zipfile.ZipFile(file) as archive:
        infos = archive.infolist()
        paths = Paths()
        names = [_checked_zip_name(info, paths) for info in infos]
        for info, name in zip(infos, names, strict=True):
            if name is not None:
                with archive.open(info) as reader:
                    yield Entry(name, _read_chunks(reader.read, "a corrupt zip file"))


def _checked_zip_name(info: zipfile.ZipInfo, paths: Paths) -> str | None:
    """The entry's safe name, or None for a directory."""
    mode = info.external_attr >> 16
    kind = stat.S_IFMT(mode)
    # Not info.is_dir(): it fails on an entry with an empty name, which safe_name refuses.
    if info.filename.endswith("/") or kind == stat.S_IFDIR:
        paths.directory(safe_name(info.filename, directory=True), info.filename)
        return None
    if kind == stat.S_IFLNK:
        raise UnsafeEntry(info.filename, "is a symbolic link")
    if kind not in (0, stat.S_IFREG):  # 0: made where there are no Unix modes
        raise UnsafeEntry(info.filename, "is a special file")
    if info.flag_bits & ENCRYPTED:
        raise UnsafeEntry(info.filename, "is encrypted: pman reads no encrypted entries")
    if info.compress_type not in ZIP_METHODS:
        raise UnsafeEntry(
            info.filename,
            f"uses compression method {info.compress_type}, which pman cannot read "
            "(it reads stored, deflate, bzip2 and lzma entries)",
        )
    return paths.file(safe_name(info.filename), info.filename)


def multipart_entries(read: Read, boundary: bytes) -> Iterator[Entry]:
    """The file parts of a multipart/form-data body; each part's filename is its path."""
    events = _multipart_events(read, boundary)
    paths = Paths()
    for event in events:
        if isinstance(event, File):
            name = paths.file(safe_name(event.filename), event.filename)
            yield Entry(name, _part_data(events))
        elif isinstance(event, Field):
            raise ArchiveError(f"part {event.name!r} is not a file (it has no filename)")


def _multipart_events(read: Read, boundary: bytes) -> Iterator[object]:
    decoder = MultipartDecoder(boundary, max_form_memory_size=MAX_PART_HEADERS + CHUNK)
    try:
        while True:
            event = decoder.next_event()
            if isinstance(event, NeedData):
                data = read(CHUNK)
                decoder.receive_data(data or None)
            elif isinstance(event, Epilogue):
                return
            else:
                yield event
    except (ValueError, RequestEntityTooLarge) as error:
        raise ArchiveError(f"not a readable multipart/form-data body: {error}") from None


def _part_data(events: Iterator[object]) -> Iterator[bytes]:
    for event in events:
        if isinstance(event, Data):
            if event.data:
                yield event.data
            if not event.more_data:
                return


def _read_chunks(read: Read, what: str) -> Iterator[bytes]:
    with _reading(what):
        while chunk := read(CHUNK):
            yield chunk


def multipart_boundary(content_type: str) -> bytes:
    """The boundary of a multipart Content-Type header; raises ArchiveError."""
    _, options = parse_options_header(content_type)
    boundary = options.get("boundary", "")
    if not boundary or not boundary.isascii():
        raise ArchiveError("multipart/form-data needs a boundary in its Content-Type")
    return boundary.encode("ascii")


# -- writing -------------------------------------------------------------------------------
def tar_stream(files: Iterable[OutFile], *, gzip: bool = False) -> Iterator[bytes]:
    """A tar file (POSIX pax format) of ``files``, gzip-compressed if asked."""
    chunks = _tar_chunks(files)
    if gzip:
        chunks = _gzipped(chunks)
    return _coalesced(chunks)


def _tar_chunks(files: Iterable[OutFile]) -> Iterator[bytes]:
    written = 0
    now = int(time.time())
    for item in files:
        info = tarfile.TarInfo(item.name)
        info.size, info.mtime, info.mode = item.size, now, 0o644
        header = info.tobuf(format=tarfile.PAX_FORMAT)
        yield header
        yield from _exactly(item)
        padding = -item.size % BLOCK
        yield b"\0" * padding
        written += len(header) + item.size + padding
    # The end-of-archive marker (two zero blocks), then zeros up to a whole record.
    end = 2 * BLOCK
    yield b"\0" * (end + (-(written + end) % RECORD))


def _exactly(item: OutFile) -> Iterator[bytes]:
    """The file's chunks, failing the stream if they do not add up to its declared size."""
    count = 0
    for chunk in item.open():
        count += len(chunk)
        if count > item.size:
            break
        yield chunk
    if count != item.size:
        raise ArchiveError(f"{item.name}: expected {item.size} bytes, got {count}")


def _gzipped(chunks: Iterator[bytes]) -> Iterator[bytes]:
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)  # wbits 31: a gzip member
    for chunk in chunks:
        if data := compressor.compress(chunk):
            yield data
    yield compressor.flush()


def zip_stream(files: Iterable[OutFile]) -> Iterator[bytes]:
    """A zip file of ``files``, stored uncompressed, written without seeking (each entry's
    sizes and CRC follow its data; ZIP64 where a size needs it)."""
    return _coalesced(_zip_chunks(files))


def _zip_chunks(files: Iterable[OutFile]) -> Iterator[bytes]:
    sink = _Sink()
    stamp = time.localtime()[:6]
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for item in files:
            info = zipfile.ZipInfo(item.name, date_time=stamp)
            info.file_size = item.size
            info.external_attr = (stat.S_IFREG | 0o644) << 16
            with archive.open(info, "w") as entry:
                for chunk in _exactly(item):
                    entry.write(chunk)
                    yield sink.take()
            yield sink.take()
    yield sink.take()


class _Sink:
    """A write-only file that hands over what was written since it was last asked."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        return data


def _coalesced(chunks: Iterator[bytes]) -> Iterator[bytes]:
    pending: list[bytes] = []
    size = 0
    for chunk in chunks:
        if not chunk:
            continue
        pending.append(chunk)
        size += len(chunk)
        if size >= WRITE_SIZE:
            yield b"".join(pending)
            pending, size = [], 0
    if pending:
        yield b"".join(pending)
