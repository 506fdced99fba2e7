"""pman.archive on its own: which names pass, and that archives are read and written as
streams (a chunk at a time, never a whole file)."""

from __future__ import annotations

import io
import os
import tarfile
import zipfile

import pytest

from pman.archive import (
    CHUNK,
    WRITE_SIZE,
    ArchiveError,
    OutFile,
    UnsafeEntry,
    safe_name,
    tar_entries,
    tar_stream,
    zip_entries,
    zip_stream,
)
from tests.support.data import tar_bytes

MIB = 1 << 20


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.txt", "a.txt"),
        ("./a.txt", "a.txt"),
        ("././sub/a.txt", "sub/a.txt"),
        ("sub/dir/a.txt", "sub/dir/a.txt"),
        ("r\u00e9sum\u00e9 .txt", "r\u00e9sum\u00e9 .txt"),
        ("..a/b..", "..a/b.."),
        ("a\\..\\b", "a\\..\\b"),  # a backslash is an ordinary character on Linux
    ],
)
def test_accepted_names(name, expected):
    assert safe_name(name) == expected


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("", "empty name"),
        ("./", "empty name"),
        ("/etc/passwd", "absolute path"),
        ("../x", "leaves the destination"),
        ("a/../../x", "leaves the destination"),
        ("a/..", "leaves the destination"),
        ("a//b", "empty segment"),
        ("a/", "empty segment"),
        ("a/./b", "'.' segment"),
        ("a\x00b", "NUL"),
        ("caf\udce9", "not valid UTF-8"),
    ],
)
def test_refused_names(name, problem):
    with pytest.raises(UnsafeEntry) as caught:
        safe_name(name)
    assert problem in str(caught.value)
    assert repr(name) in str(caught.value)


@pytest.mark.parametrize("name", ["", "a//b", "../x"])
def test_zip_entries_with_bad_names_are_refused_before_any_is_read(name):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("first.txt", b"1")
        archive.writestr(zipfile.ZipInfo(name), b"2")
    with pytest.raises(UnsafeEntry) as caught:
        next(zip_entries(io.BytesIO(buffer.getvalue())))
    assert repr(name) in str(caught.value)


@pytest.mark.parametrize(("name", "expected"), [("./", ""), (".", ""), ("sub/", "sub")])
def test_directory_names(name, expected):
    assert safe_name(name, directory=True) == expected


class CountingSource:
    """A file's content in 1 MiB chunks, counting how many were asked for."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.pulled = 0

    def open(self):
        for start in range(0, self.size, CHUNK):
            self.pulled += 1
            yield b"x" * min(CHUNK, self.size - start)


@pytest.mark.parametrize("writer", [tar_stream, zip_stream], ids=["tar", "zip"])
def test_writers_pull_content_only_as_the_consumer_reads(writer):
    source = CountingSource(8 * MIB)
    stream = writer([OutFile("big.bin", source.size, source.open)])
    first = next(stream)
    assert source.pulled <= 2
    pieces = [first, *stream]
    assert source.pulled == 8
    assert max(map(len, pieces)) <= WRITE_SIZE + CHUNK
    assert sum(map(len, pieces)) > source.size


def read_back(data: bytes, kind: str) -> dict[str, bytes]:
    if kind == "zip":
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            assert archive.testzip() is None
            return {info.filename: archive.read(info) for info in archive.infolist()}
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        return {m.name: archive.extractfile(m).read() for m in archive}


@pytest.mark.parametrize(
    ("kind", "write"),
    [
        ("tar", tar_stream),
        ("tar.gz", lambda files: tar_stream(files, gzip=True)),
        ("zip", zip_stream),
    ],
)
def test_written_archives_read_back_exactly(kind, write):
    files = {"a.txt": b"a\n", "empty": b"", "sub/dir/n\u00e4me.bin": bytes(range(256)) * 4099}
    items = [OutFile(n, len(d), lambda d=d: iter([d[:1000], d[1000:]])) for n, d in files.items()]
    data = b"".join(write(items))
    assert len(data) % (1 if kind != "tar" else tarfile.RECORDSIZE) == 0
    assert read_back(data, "zip" if kind == "zip" else "tar") == files


@pytest.mark.parametrize("writer", [tar_stream, zip_stream], ids=["tar", "zip"])
@pytest.mark.parametrize("actual", [9, 11])
def test_a_file_that_changed_size_fails_the_stream(writer, actual):
    item = OutFile("f", 10, lambda: iter([b"x" * actual]))
    with pytest.raises(ArchiveError, match="expected 10 bytes"):
        b"".join(writer([item]))


class CountingReader(io.RawIOBase):
    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)
        self.consumed = 0

    def read(self, size: int = -1) -> bytes:
        chunk = self._data.read(size)
        self.consumed += len(chunk)
        return chunk


@pytest.mark.parametrize("mode", ["w", "w:gz"])
def test_tar_uploads_are_read_in_one_streaming_pass(mode):
    # Random content: compression must not shrink the body below one chunk.
    body = tar_bytes({"one.bin": os.urandom(4 * MIB), "two.bin": os.urandom(4 * MIB)}, mode=mode)
    reader = CountingReader(body)
    entries = tar_entries(reader)
    first = next(entries)
    assert first.name == "one.bin"
    assert len(next(first.chunks)) <= CHUNK
    assert reader.consumed < len(body) // 2
    rest = b"".join(first.chunks)
    second = next(entries)
    assert (len(rest), second.name, len(b"".join(second.chunks))) == (3 * MIB, "two.bin", 4 * MIB)
