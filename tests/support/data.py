"""Helpers (no tests) for the data-route and client tests: archives built in memory, Swift
contents, the real publisher, a pman with Swift credentials; and the ``containers`` fixture
(a plugin of the root ``conftest.py``)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from swiftclient.exceptions import ClientException

import swiftcreds
from devstack.swiftaio import SwiftAIO
from tests.support.names import unique_name
from tests.support.pman_cluster import Pman, running_pman
from tests.support.swift import delete_container

# Sizes chosen to cross the 1 MiB chunks pman reads and writes, and tar's 512-byte blocks.
SAMPLE: dict[str, bytes] = {
    "a.txt": b"hello\n",
    "sub/dir/big.bin": os.urandom(2 * (1 << 20) + 517),
    "empty.dat": b"",
    "sub/r\u00e9sum\u00e9 with spaces.txt": "caf\u00e9\n".encode(),
}
LIMIT = 8 << 20
PUBLISHER = str(Path(sys.executable).with_name("publisher"))


def tar_bytes(files: dict[str, bytes], *, mode: str = "w", dot_prefix: bool = True) -> bytes:
    """A tar archive as ``tar -C dir -cf - .`` writes it: ``./`` names, directory entries."""
    buffer = io.BytesIO()
    prefix = "./" if dot_prefix else ""
    with tarfile.open(fileobj=buffer, mode=mode) as archive:
        if dot_prefix:
            archive.addfile(_dir_info("./"))
        for name, data in files.items():
            parent = name.rpartition("/")[0]
            if parent:
                archive.addfile(_dir_info(prefix + parent))
            info = tarfile.TarInfo(prefix + name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _dir_info(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    return info


def zip_bytes(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def objects(swift: SwiftAIO, container: str, prefix: str = "") -> dict[str, bytes]:
    """Every object under ``prefix`` (names relative to it), or {} without the container."""
    conn = swift.connection()
    try:
        _, listing = conn.get_container(container, prefix=prefix or None, full_listing=True)
    except ClientException as error:
        if error.http_status == 404:
            return {}
        raise
    start = len(prefix) + 1 if prefix else 0
    return {item["name"][start:]: conn.get_object(container, item["name"])[1] for item in listing}


def container_exists(swift: SwiftAIO, container: str) -> bool:
    try:
        swift.connection().head_container(container)
    except ClientException as error:
        if error.http_status == 404:
            return False
        raise
    return True


def publish(
    swift: SwiftAIO, source: Path, location: str, *, credentials: Path | None = None
) -> None:
    """Publish ``source`` to ``location`` with the real publisher (its manifest included)."""
    _publisher(swift, ["upload", str(source), f"swift://{location}"], credentials)


def stage_in(
    swift: SwiftAIO, location: str, destination: Path, *, credentials: Path | None = None
) -> None:
    """Download ``location`` as a job's stage-in container does."""
    _publisher(swift, ["download", f"swift://{location}", str(destination)], credentials)


def _publisher(swift: SwiftAIO, argv: list[str], credentials: Path | None) -> None:
    command, *rest = argv
    options = ["--progress-interval", "0"]
    if credentials:
        options += ["--credentials", str(credentials)]
    env = {**os.environ, **swift.environment()}
    subprocess.run(
        [PUBLISHER, command, *options, *rest], env=env, check=True, capture_output=True, timeout=60
    )


@contextmanager
def data_pman(cluster: Any, swift: SwiftAIO | None, **settings: Any) -> Iterator[Pman]:
    """pman on the test cluster with the test Swift's credentials and an 8 MiB data limit;
    ``settings`` override those (and turn the status cache off for one-test servers)."""
    options: dict[str, Any] = {"max_data_bytes": LIMIT, **settings}
    if "swift_credentials" not in options:
        assert swift is not None
        options["swift_credentials"] = swiftcreds.from_environment(swift.environment())
    with running_pman(cluster, **options) as handle:
        yield handle


class Containers:
    """Unique job ids whose ``key-<jid>`` containers are deleted afterwards."""

    def __init__(self, swift: SwiftAIO) -> None:
        self.swift = swift
        self.names: list[str] = []

    def jid(self) -> str:
        jid = unique_name("data")
        self.names.append(f"key-{jid}")
        return jid

    def add(self, container: str) -> str:
        self.names.append(container)
        return container

    def cleanup(self) -> None:
        connection = self.swift.connection()
        for name in self.names:
            delete_container(connection, name)


@pytest.fixture
def containers(swift_server: SwiftAIO) -> Iterator[Containers]:
    """Unique job ids for one test, their ``key-<jid>`` containers deleted after it."""
    handle = Containers(swift_server)
    yield handle
    handle.cleanup()
