"""Where a test's jobs find their data, in each storage mode pman runs in.

``storage_for(mode, ...)`` gives a :class:`Storage`: the pman settings of the mode, a
directory (or Swift prefix) holding the same two input files (``a.txt``, ``sub/b.txt``), a
place per job for the output, and a way to list what a job wrote there. With Swift that is a
container of the real Swift server; in the volume modes a storeBase on this machine: a
directory of its own for ``host``, the directory of a fresh claim of the local cluster for
``kubernetes_pvc``. Both volume modes need the local cluster: a real cluster's nodes do not
see this machine's files.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support.cluster import KubeCluster
from tests.support.names import unique_name
from tests.support.swift import delete_container

MODES = ("swift", "kubernetes_pvc", "host")
VOLUME_MODES = ("kubernetes_pvc", "host")
INPUT = {"a.txt": b"alpha\n", "sub/b.txt": b"beta\n"}
# What a job's message says when its input is missing, in each kind of storage.
MISSING_INPUT = {
    "swift": "staging in the input from Swift failed",
    "kubernetes_pvc": "does not exist in the storeBase",
    "host": "does not exist in the storeBase",
}


@dataclass
class Storage:
    """One storage mode as a test sees it."""

    mode: str
    settings: dict[str, Any]
    key: str  # the Swift container, or the storeBase directory, of this test's data
    root: Path | None = None  # the storeBase on this machine (volume modes)
    swift: Any = field(default=None, repr=False)  # a swiftclient Connection (swift)

    @property
    def volume(self) -> bool:
        return self.mode in VOLUME_MODES

    @property
    def input_dir(self) -> str:
        return f"{self.key}/incoming"

    @property
    def missing_dir(self) -> str:
        return f"{self.key}/none"

    @property
    def missing_words(self) -> str:
        return MISSING_INPUT[self.mode]

    def output_dir(self, jid: str) -> str:
        return f"{self.key}/out-{jid}"

    def outputs(self, jid: str) -> set[str]:
        """The files a job wrote to its output, by path relative to it."""
        if self.root is None:
            prefix = f"out-{jid}/"
            _, listed = self.swift.get_container(self.key, prefix=prefix, full_listing=True)
            return {item["name"][len(prefix) :] for item in listed}
        out = self.root / self.output_dir(jid)
        return {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}


@contextmanager
def storage_for(
    mode: str, cluster: KubeCluster, *, swift_server: Any = None, scratch: Path | None = None
) -> Iterator[Storage]:
    """The mode's storage with the two input files in place; removed afterwards."""
    key = f"key-{uuid.uuid4().hex[:12]}"
    if mode == "swift":
        connection = swift_server.connection()
        connection.put_container(key)
        for name, data in INPUT.items():
            connection.put_object(key, f"incoming/{name}", data)
        try:
            yield Storage(mode, {}, key, swift=connection)
        finally:
            delete_container(connection, key)
        return
    if cluster.local is None:
        pytest.skip(f"STORAGE_TYPE={mode} tests write the storeBase: they need the local cluster")
    if mode == "host":
        assert scratch is not None
        root = scratch
        settings: dict[str, Any] = {"storage_type": "host", "storebase": root}
    else:
        claim = unique_name("storebase")
        root = cluster.local.claim_directory(cluster.namespace, claim)
        settings = {"storage_type": "kubernetes_pvc", "volume_name": claim}
    for name, data in INPUT.items():
        path = root / key / "incoming" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    try:
        yield Storage(mode, settings, key, root=root)
    finally:
        shutil.rmtree(root / key, ignore_errors=True)
