"""``pods/{name}/log``: a container's captured stdout and stderr, whole, tailed or followed.

Errors use the API server's words: a multi-container pod needs ``container``, a container
that has not started yet is "waiting to start". Followed logs stream until the container
has ended and everything it wrote has been sent.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping
from typing import Any, BinaryIO

from localcluster.apiserver import errors
from localcluster.apiserver.api import Response
from localcluster.apiserver.registry import Store
from localcluster.node.kubelet import Kubelet

Obj = dict[str, Any]
TEXT = "text/plain"
_POLL = 0.02
_TAIL_BLOCK = 64 * 1024


def _tail(data: bytes, lines: int) -> bytes:
    if lines <= 0:
        return b""
    parts = data.splitlines(keepends=True)
    return b"".join(parts[-lines:])


def read_log(handle: BinaryIO, tail: int | None) -> bytes:
    """The whole log, or its last ``tail`` lines read from the end: a status poll asks for
    the tail of a log that may have grown large, and must not read all of it each time."""
    size = handle.seek(0, os.SEEK_END)
    if tail is None:
        handle.seek(0)
        return handle.read(size)
    block = _TAIL_BLOCK
    while True:
        start = max(0, size - block)
        handle.seek(start)
        data = handle.read(size - start)
        # More lines than asked for: the first, perhaps cut, is not among those returned.
        if start == 0 or len(data.splitlines()) > tail:
            return _tail(data, tail)
        block *= 4


def _status_of(pod: Obj, container: str) -> Obj:
    status = pod.get("status", {})
    for entry in [
        *(status.get("initContainerStatuses") or []),
        *(status.get("containerStatuses") or []),
    ]:
        if entry.get("name") == container:
            return entry
    return {}


class PodLogs:
    def __init__(self, store: Store, kubelet: Kubelet) -> None:
        self.store = store
        self.kubelet = kubelet

    def logs(self, namespace: str, name: str, query: Mapping[str, str]) -> Response:
        entry = self.store.get("pods", namespace, name)
        if entry is None:
            raise errors.not_found("pods", "", name)
        pod = entry.obj
        container = self._container(pod, query.get("container", ""))
        if query.get("previous", "").lower() in ("true", "1"):
            raise errors.bad_request(
                f'previous terminated container "{container}" in pod "{name}" not found'
            )
        path = self.kubelet.log_path(pod["metadata"]["uid"], container)
        if path is None:
            waiting = _status_of(pod, container).get("state", {}).get("waiting")
            if waiting is not None or not _status_of(pod, container):
                reason = (waiting or {}).get("reason", "ContainerCreating")
                raise errors.bad_request(
                    f'container "{container}" in pod "{name}" is waiting to start: {reason}'
                )
            return Response(200, b"", TEXT)
        tail = self._int(query, "tailLines")
        limit = self._int(query, "limitBytes")
        handle = path.open("rb")
        try:
            data = read_log(handle, tail)
        except BaseException:
            handle.close()
            raise
        if query.get("follow", "").lower() in ("true", "1"):
            chunks = self._follow(handle, pod["metadata"]["uid"], container, data, limit)
            return Response(200, content_type=TEXT, chunks=chunks)
        handle.close()
        if limit is not None:
            data = data[:limit]
        return Response(200, data, TEXT)

    @staticmethod
    def _int(query: Mapping[str, str], key: str) -> int | None:
        if not query.get(key):
            return None
        try:
            return int(query[key])
        except ValueError:
            raise errors.bad_request(f"{key} must be an integer") from None

    def _container(self, pod: Obj, wanted: str) -> str:
        name = pod["metadata"]["name"]
        spec = pod.get("spec", {})
        mains = [c["name"] for c in spec.get("containers") or []]
        inits = [c["name"] for c in spec.get("initContainers") or []]
        if not wanted:
            if len(mains) == 1:
                return mains[0]
            message = (
                f"a container name must be specified for pod {name}, "
                f"choose one of: [{' '.join(mains)}]"
            )
            if inits:
                message += f" or one of the init containers: [{' '.join(inits)}]"
            raise errors.bad_request(message)
        if wanted not in mains and wanted not in inits:
            raise errors.bad_request(f"container {wanted} is not valid for pod {name}")
        return wanted

    def _follow(
        self, handle: BinaryIO, uid: str, container: str, first: bytes, limit: int | None
    ) -> Iterator[bytes | None]:
        """What the container writes after ``first`` (read up to the handle's position)."""
        sent = 0

        def clip(data: bytes) -> bytes:
            nonlocal sent
            if limit is not None:
                data = data[: max(limit - sent, 0)]
            sent += len(data)
            return data

        with handle:
            if first:
                yield clip(first)
            idle_since = time.monotonic()
            while limit is None or sent < limit:
                running = self.kubelet.running(uid, container)
                data = handle.read()
                if data:
                    idle_since = time.monotonic()
                    yield clip(data)
                    continue
                if not running:
                    return
                if time.monotonic() - idle_since > 1.0:
                    idle_since = time.monotonic()
                    yield None
                time.sleep(_POLL)
