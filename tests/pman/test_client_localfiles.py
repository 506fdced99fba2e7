"""The local side of push and pull: directories read without following links, archives
unpacked without leaving their directory or following what is already there."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile

import pytest

from pman.client.errors import LocalFilesError
from pman.client.localfiles import (
    archive_type,
    check_against_manifest,
    directory_files,
    unpack_tar,
)
from tests.support.data import SAMPLE, tar_bytes, zip_bytes
from tests.support.trees import read_tree, write_tree


def test_unpack_writes_every_file(tmp_path):
    unpacked = unpack_tar(io.BytesIO(tar_bytes(SAMPLE, mode="w:gz")), tmp_path / "out")
    assert read_tree(tmp_path / "out") == SAMPLE
    assert set(unpacked.files) == set(SAMPLE)
    assert unpacked.bytes == sum(map(len, SAMPLE.values()))


def evil_tar(name: str, *, link: str = "") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        good = tarfile.TarInfo("good.txt")
        good.size = 4
        archive.addfile(good, io.BytesIO(b"good"))
        info = tarfile.TarInfo(name)
        if link:
            info.type, info.linkname = tarfile.SYMTYPE, link
        archive.addfile(info, io.BytesIO(b""))
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (evil_tar("../escape.txt"), "leaves the destination"),
        (evil_tar("/tmp/abs.txt"), "absolute path"),
        (evil_tar("link", link="/etc"), "symbolic link"),
    ],
)
def test_unsafe_entries_are_refused(tmp_path, body, problem):
    with pytest.raises(LocalFilesError, match=problem):
        unpack_tar(io.BytesIO(body), tmp_path / "out")
    assert not (tmp_path / "escape.txt").exists()
    assert not (tmp_path / "out" / "link").exists()
    # Files before the refused entry are complete; nothing half-written is left.
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["good.txt"]


def test_a_link_in_the_destination_is_never_followed(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    destination = tmp_path / "out"
    destination.mkdir()
    os.symlink(outside, destination / "sub")
    with pytest.raises(LocalFilesError, match="is in the way"):
        unpack_tar(io.BytesIO(tar_bytes(SAMPLE)), destination)
    assert list(outside.iterdir()) == []


def test_a_link_where_a_file_goes_is_replaced_not_followed(tmp_path):
    target = tmp_path / "precious"
    target.write_bytes(b"keep me")
    destination = tmp_path / "out"
    destination.mkdir()
    os.symlink(target, destination / "a.txt")
    unpack_tar(io.BytesIO(tar_bytes({"a.txt": b"new"})), destination)
    assert target.read_bytes() == b"keep me"
    assert not (destination / "a.txt").is_symlink()
    assert (destination / "a.txt").read_bytes() == b"new"


def with_manifest(md5: str) -> dict[str, bytes]:
    manifest = {"files": [{"path": "a.txt", "md5": md5}]}
    return {"a.txt": b"a", ".publisher-manifest.json": json.dumps(manifest).encode()}


def test_a_file_that_does_not_match_the_manifest_is_reported(tmp_path):
    unpacked = unpack_tar(io.BytesIO(tar_bytes(with_manifest("0" * 32))), tmp_path)
    with pytest.raises(LocalFilesError, match="does not match the manifest's MD5"):
        check_against_manifest(tmp_path, unpacked)


def test_matching_files_pass_the_manifest_check(tmp_path):
    files = with_manifest(hashlib.md5(b"a").hexdigest())
    check_against_manifest(tmp_path, unpack_tar(io.BytesIO(tar_bytes(files)), tmp_path))


def test_directory_files_are_relative_paths(tmp_path):
    write_tree(tmp_path, SAMPLE)
    files = directory_files(tmp_path)
    assert {f.name: b"".join(f.open()) for f in files} == SAMPLE
    assert {f.name: f.size for f in files} == {name: len(data) for name, data in SAMPLE.items()}


@pytest.mark.parametrize("kind", ["fifo", "link to a directory"])
def test_directory_files_refuse_links_and_special_files(tmp_path, kind):
    write_tree(tmp_path, {"a.txt": b"a"})
    if kind == "fifo":
        os.mkfifo(tmp_path / "odd")
    else:
        os.symlink("/etc", tmp_path / "odd")
    with pytest.raises(LocalFilesError, match=str(tmp_path / "odd")):
        directory_files(tmp_path)


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        (tar_bytes(SAMPLE), "application/x-tar"),
        (tar_bytes(SAMPLE, mode="w:gz"), "application/gzip"),
        (tar_bytes({"a": b"a"}, mode="w:bz2"), "application/x-tar"),
        (tar_bytes({"a": b"a"}, mode="w:xz"), "application/x-tar"),
        (zip_bytes(SAMPLE), "application/zip"),
    ],
)
def test_archive_type_is_read_from_the_content(tmp_path, data, content_type):
    (tmp_path / "input.bin").write_bytes(data)
    assert archive_type(tmp_path / "input.bin") == content_type
