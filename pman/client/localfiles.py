"""The local side of ``pman push`` and ``pman pull``: a directory read as archive entries
without following links, and a downloaded tar stream unpacked without leaving its directory.

Failures are :class:`LocalFilesError`, naming the path: a link or special file in a
directory to push, an unreadable file, a refused archive entry, a destination that cannot
be written, a file that does not match the manifest's checksum.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from pman.archive import CHUNK, ArchiveError, OutFile, UnsafeEntry, safe_name, tar_entries
from pman.client.errors import LocalFilesError

MANIFEST = ".publisher-manifest.json"
GZIP_MAGIC = b"\x1f\x8b"
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
OTHER_COMPRESSION = (b"BZh", b"\xfd7zXZ\x00")


@dataclass
class Unpacked:
    """What an unpack wrote: each file's MD5 by relative path, and their total size."""

    files: dict[str, str] = field(default_factory=dict)
    bytes: int = 0


def directory_files(root: Path) -> list[OutFile]:
    """Every regular file under ``root``, with its path relative to it; links and special
    files are refused rather than followed or skipped."""
    found: list[OutFile] = []
    for top, dirs, names in os.walk(root, onerror=_walk_error):
        dirs.sort()
        for name in sorted(dirs + names):
            path = Path(top, name)
            info = _lstat(path)
            if stat.S_ISLNK(info.st_mode):
                raise LocalFilesError(f"{path} is a symbolic link: pman uploads no links")
            if stat.S_ISDIR(info.st_mode):
                continue
            if not stat.S_ISREG(info.st_mode):
                raise LocalFilesError(f"{path} is not a regular file (a device, FIFO or socket)")
            relative = _relative_name(path, root)
            found.append(OutFile(relative, info.st_size, lambda p=path: _file_chunks(p)))
    return found


def _walk_error(error: OSError) -> None:
    raise LocalFilesError(f"cannot read {error.filename}: {error.strerror}")


def _lstat(path: Path) -> os.stat_result:
    try:
        return path.lstat()
    except OSError as error:
        raise LocalFilesError(f"cannot read {path}: {error.strerror}") from None


def _relative_name(path: Path, root: Path) -> str:
    try:
        return safe_name(path.relative_to(root).as_posix())
    except UnsafeEntry as error:
        raise LocalFilesError(f"{path}: {error.problem}") from None


def _file_chunks(path: Path) -> Iterator[bytes]:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as error:
        raise LocalFilesError(f"cannot read {path}: {error.strerror}") from None
    with os.fdopen(fd, "rb") as handle:
        while chunk := handle.read(CHUNK):
            yield chunk


def archive_type(path: Path) -> str:
    """The Content-Type to upload an archive file with, from its first bytes."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(512)
    except OSError as error:
        raise LocalFilesError(f"cannot read {path}: {error.strerror}") from None
    if head.startswith(GZIP_MAGIC):
        return "application/gzip"
    if head.startswith(ZIP_MAGICS):
        return "application/zip"
    if head.startswith(OTHER_COMPRESSION) or head[257:262] == b"ustar":
        return "application/x-tar"  # pman recognises bzip2 and xz compression itself
    raise LocalFilesError(f"{path} is neither a tar (plain or compressed) nor a zip file")


def unpack_tar(stream: BinaryIO, destination: Path) -> Unpacked:
    """Unpack a tar stream into ``destination``: every name checked, no links created or
    followed, each file written under a temporary name and renamed once complete."""
    _make_directory(destination)
    unpacked = Unpacked()
    try:
        for entry in tar_entries(stream):
            target = _target(destination, entry.name)
            digest, size = _write_file(target, entry.chunks)
            unpacked.files[entry.name] = digest
            unpacked.bytes += size
    except (ArchiveError, UnsafeEntry) as error:
        raise LocalFilesError(f"refused to unpack the archive from pman: {error}") from None
    return unpacked


def check_against_manifest(destination: Path, unpacked: Unpacked) -> None:
    """Compare what was unpacked with the publisher's manifest, when the archive had one."""
    if MANIFEST not in unpacked.files:
        return
    try:
        manifest = json.loads((destination / MANIFEST).read_bytes())
        listed = {item["path"]: item.get("md5") for item in manifest["files"]}
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise LocalFilesError(f"{destination / MANIFEST} is unreadable: {error}") from None
    for path, md5 in listed.items():
        if path not in unpacked.files:
            raise LocalFilesError(f"{path} is in the manifest but was not in the archive")
        if md5 and unpacked.files[path] != md5:
            raise LocalFilesError(f"{destination / path} does not match the manifest's MD5")


def _make_directory(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise LocalFilesError(f"cannot create {path}: {error.strerror}") from None
    if path.is_symlink() or not path.is_dir():
        raise LocalFilesError(f"{path} is not a directory")


def _target(root: Path, name: str) -> Path:
    """Where ``name`` goes under ``root``; its parents created, none of them a link."""
    current = root
    *parents, leaf = name.split("/")
    for part in parents:
        current = current / part
        try:
            mode = current.lstat().st_mode
        except FileNotFoundError:
            _make_directory(current)
            continue
        except OSError as error:  # a name too long for the filesystem, say
            raise LocalFilesError(f"cannot create {current}: {error.strerror}") from None
        if not stat.S_ISDIR(mode):
            raise LocalFilesError(f"{current} is in the way: a link or a file, not a directory")
    return current / leaf


def _write_file(target: Path, chunks: Iterator[bytes]) -> tuple[str, int]:
    # A short name of its own, not one made from the target's: the target's name may be as
    # long as the filesystem allows (255 bytes), and nothing could be added to it.
    partial = target.with_name(f".pman-partial-{secrets.token_hex(8)}")
    digest = hashlib.md5(usedforsecurity=False)
    size = 0
    try:
        # O_EXCL on a fresh name: never through a link; the umask applies to 0o666.
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666)
        with os.fdopen(fd, "wb") as handle:
            for chunk in chunks:
                handle.write(chunk)
                digest.update(chunk)
                size += len(chunk)
        os.replace(partial, target)  # replaces a link or file in the way, never follows it
    except OSError as error:
        _remove(partial)
        raise LocalFilesError(f"cannot write {target}: {error.strerror}") from None
    except BaseException:
        _remove(partial)
        raise
    return digest.hexdigest(), size


def _remove(partial: Path) -> None:
    """Remove a partial file if there is one; a failure here must not hide the first one."""
    with contextlib.suppress(OSError):
        partial.unlink(missing_ok=True)
