"""Where a test's jobs find their data, in each storage mode pman runs in.

``storage_for(mode, ...)`` gives a :class:`Storage`: the pman settings of the mode, a
directory (or Swift prefix) holding the same two input files (``a.txt``, ``sub/b.txt``), a
place per job for the output, and a way to list what a job wrote there. With Swift that is a
container of the real Swift server; in the volume modes a storeBase on this machine: a
directory of its own for ``host``, the directory of a fresh claim of the local cluster for
``kubernetes_pvc``. Both volume modes need the local cluster: a real cluster's nodes do not
see this machine's files.

Jobs run as a non-root UID (the namespace's arbitrary one, in group 0, or ``CONTAINER_USER``),
not as the tests, which write the storeBase as root. So the storeBase is what a real
deployment makes it: a host ``STOREBASE`` is prepared as an operator must
(:func:`prepare_storebase`: no kubelet changes a hostPath), a claim is given to the pod's
``fsGroup`` by the kubelet, and the client makes what it writes for a job group-writable
(:func:`shared_mkdir`, :func:`share_tree`), as a client running as another UID than its jobs
must.
"""

from __future__ import annotations

import os
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


def prepare_storebase(path: Path, *, gid: int = 0) -> Path:
    """What an operator does to a host directory before pman's jobs mount it as
    ``STOREBASE``, since Kubernetes never changes a hostPath's owner: the group of the jobs
    (0, which every arbitrary UID is in, as OpenShift images and volumes use it; the GID of
    ``CONTAINER_USER`` when that is fixed), setgid so that what is made in it keeps that group,
    and group read, write and search. (Giving it away takes root; elsewhere the local cluster
    runs every container as the tests' own user.)"""
    if os.geteuid() == 0:
        os.chown(path, -1, gid)
    path.chmod(0o2775)
    return path


def shared_mkdir(path: Path) -> Path:
    """``mkdir -p`` as a client running as another UID than its jobs makes the directories
    they write (pfcon with ``umask 002``): group-writable, setgid, in the group of the
    storeBase (which setgid passes on: the claim's fsGroup, the host directory's group)."""
    missing, directory = [], path
    while not directory.exists():
        missing.append(directory)
        directory = directory.parent
    for directory in reversed(missing):
        directory.mkdir(exist_ok=True)
        directory.chmod(0o2775)
    return path


def share_tree(top: Path) -> Path:
    """What the client wrote under ``top``, as it leaves it with ``umask 002``: directories
    group-writable and setgid, files group-writable. A job's UID may then write its input
    as far as modes go, as pfcon's own UID (the jobs' on OpenShift) may: only the read-only
    mount keeps the job from changing it."""
    for directory, _, files in os.walk(top):
        Path(directory).chmod(0o2775)
        for name in files:
            path = Path(directory, name)
            if not path.is_symlink():
                path.chmod(path.stat().st_mode & 0o7777 | 0o664)
    return top


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
        root = prepare_storebase(scratch)
        settings: dict[str, Any] = {"storage_type": "host", "storebase": root}
    else:
        claim = unique_name("storebase")
        root = cluster.local.claim_directory(cluster.namespace, claim)
        settings = {"storage_type": "kubernetes_pvc", "volume_name": claim}
    for name, data in INPUT.items():
        path = root / key / "incoming" / name
        shared_mkdir(path.parent)
        path.write_bytes(data)
    share_tree(root / key)
    try:
        yield Storage(mode, settings, key, root=root)
    finally:
        shutil.rmtree(root / key, ignore_errors=True)
