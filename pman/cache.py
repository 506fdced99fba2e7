"""A watch-fed copy of pman's Jobs and pods, so a status GET costs no Kubernetes request.

Each :class:`Informer` lists its objects once, then follows a watch from the
list's resourceVersion: resumed when the server ends the stream, listed again on
410 Gone, and marked unsynced while it cannot reach the API, so that readers
fall back to asking Kubernetes directly rather than trusting a stale copy.
The cache holds nothing Kubernetes does not: losing it loses nothing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from pman.errors import PmanError, WatchExpired
from pman.jobspec import JID_LABEL, SELECTOR
from pman.kube import Kube, WatchStream

Obj = dict[str, Any]
log = logging.getLogger(__name__)


class Informer:
    """The current objects of one resource, kept by a list and a watch in a thread."""

    def __init__(
        self,
        kube: Kube,
        resource: str,
        *,
        selector: str,
        index: Callable[[Obj], str],
        watch_timeout: int = 10,
    ) -> None:
        self._kube = kube
        self._resource = resource
        self._selector = selector
        self._key = index
        self._watch_timeout = watch_timeout
        self._lock = threading.Lock()
        self._by_key: dict[str, dict[str, Obj]] = {}
        self._ignored_uids: set[str] = set()
        self._stop = threading.Event()
        self._stream: WatchStream | None = None
        self._thread = threading.Thread(target=self._run, name=f"pman-{resource}", daemon=True)
        self.synced = threading.Event()

    def start(self) -> None:
        """Begin listing and watching in the background."""
        self._thread.start()

    def stop(self) -> None:
        """Stop watching and wait briefly for the thread to end."""
        self._stop.set()
        stream = self._stream
        if stream is not None:
            stream.close()
        self._thread.join(timeout=5)

    def get(self, key: str) -> list[Obj]:
        """The objects indexed under ``key`` (a jid)."""
        with self._lock:
            return list(self._by_key.get(key, {}).values())

    def index_keys(self) -> list[str]:
        """Every index key currently held."""
        with self._lock:
            return list(self._by_key)

    def forget(self, key: str) -> None:
        """Drop ``key``'s objects now (after a DELETE) and ignore late events about them."""
        with self._lock:
            for obj in self._by_key.pop(key, {}).values():
                self._ignored_uids.add(_uid(obj))

    def _run(self) -> None:
        backoff = 0.5
        try:
            while not self._stop.is_set():
                try:
                    version = self._relist()
                    backoff = 0.5
                    self._follow(version)
                except WatchExpired:
                    continue
                except Exception as error:
                    # Whatever broke the watch, the copy may now miss changes: readers must
                    # ask Kubernetes until a fresh list has been taken.
                    self.synced.clear()
                    if not self._stop.is_set():
                        self._report(error)
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, 10)
        finally:
            self.synced.clear()

    def _report(self, error: Exception) -> None:
        if isinstance(error, PmanError):
            log.warning("watching %s failed, retrying: %s", self._resource, error)
        else:
            log.exception("watching %s failed unexpectedly, retrying", self._resource)

    def _relist(self) -> str:
        lister = self._kube.list_jobs if self._resource == "jobs" else self._kube.list_pods
        items, version = lister(self._selector)
        fresh: dict[str, dict[str, Obj]] = {}
        for obj in items:
            fresh.setdefault(self._key(obj), {})[_name(obj)] = obj
        with self._lock:
            self._by_key = fresh
            present = {_uid(obj) for obj in items}
            self._ignored_uids &= present
        self.synced.set()
        return version

    def _follow(self, version: str) -> None:
        while not self._stop.is_set():
            self._stream = self._kube.watch(
                self._resource,
                selector=self._selector,
                resource_version=version,
                timeout=self._watch_timeout,
            )
            try:
                for event in self._stream:
                    version = self._apply(event) or version
            finally:
                self._stream = None

    def _apply(self, event: Obj) -> str:
        obj = event.get("object") or {}
        kind = event.get("type")
        if kind == "BOOKMARK":
            return _version(obj)
        key, name, uid = self._key(obj), _name(obj), _uid(obj)
        with self._lock:
            if kind == "DELETED":
                self._by_key.get(key, {}).pop(name, None)
                self._ignored_uids.discard(uid)
            elif uid not in self._ignored_uids:
                self._by_key.setdefault(key, {})[name] = obj
            if key in self._by_key and not self._by_key[key]:
                del self._by_key[key]
        return _version(obj)


class StatusCache:
    """pman's Jobs and their pods, by jid."""

    def __init__(self, kube: Kube, *, watch_timeout: int = 10) -> None:
        options = {"selector": SELECTOR, "index": _jid, "watch_timeout": watch_timeout}
        self._jobs = Informer(kube, "jobs", **options)
        self._pods = Informer(kube, "pods", **options)

    def start(self) -> None:
        """Begin following the cluster in the background."""
        self._jobs.start()
        self._pods.start()

    def stop(self) -> None:
        """Stop following the cluster."""
        self._jobs.stop()
        self._pods.stop()

    @property
    def synced(self) -> bool:
        """Whether both watches are following the cluster right now."""
        return self._jobs.synced.is_set() and self._pods.synced.is_set()

    def wait_synced(self, timeout: float) -> bool:
        """Wait until both watches have listed (for tools and tests)."""
        return self._jobs.synced.wait(timeout) and self._pods.synced.wait(timeout)

    def lookup(self, jid: str) -> tuple[Obj, list[Obj]] | None:
        """The Job and pods of ``jid``, or None when the cache cannot say."""
        if not self.synced:
            return None
        jobs = self._jobs.get(jid)
        return (jobs[0], self._pods.get(jid)) if jobs else None

    def everything(self) -> list[tuple[Obj, list[Obj]]] | None:
        """Every Job with its pods, or None when the cache cannot say."""
        if not self.synced:
            return None
        return [
            (jobs[0], self._pods.get(jid))
            for jid in self._jobs.index_keys()
            if (jobs := self._jobs.get(jid))
        ]

    def forget(self, jid: str) -> None:
        """Drop a deleted job at once, ahead of its watch events."""
        self._jobs.forget(jid)
        self._pods.forget(jid)


def _jid(obj: Obj) -> str:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return labels.get(JID_LABEL) or _name(obj)


def _name(obj: Obj) -> str:
    return (obj.get("metadata") or {}).get("name", "")


def _uid(obj: Obj) -> str:
    return (obj.get("metadata") or {}).get("uid", "")


def _version(obj: Obj) -> str:
    return (obj.get("metadata") or {}).get("resourceVersion", "")
