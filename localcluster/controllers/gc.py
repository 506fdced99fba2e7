"""The garbage collector: dependents of deleted owners, and the deletion finalizers.

Pods name their Job in ``ownerReferences``. When a Job goes (``Background``), its pods are
deleted; ``orphan`` strips the reference from the pods before the Job goes;
``foregroundDeletion`` deletes the pods and lets the Job go once they are gone. A pod
whose every owning Job is already gone (created while its Job was being deleted) is
deleted too, as Kubernetes' collector deletes dependents with dangling owners. Events
older than an hour are removed, as the API server's event TTL does.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from localcluster.apiserver import errors, resources
from localcluster.apiserver.lifecycle import FOREGROUND, ORPHAN, Lifecycle
from localcluster.apiserver.meta import parse_timestamp
from localcluster.apiserver.registry import DELETED, Change, NotFound, Store
from localcluster.controllers.controller import Controller

log = logging.getLogger("localcluster.gc")

Obj = dict[str, Any]
EVENT_TTL = 3600.0
_SWEEP = ("sweep-events",)


def _owners(obj: Obj) -> set[str]:
    return {ref.get("uid", "") for ref in obj.get("metadata", {}).get("ownerReferences") or []}


def _owning_jobs(obj: Obj) -> set[str]:
    refs = obj.get("metadata", {}).get("ownerReferences") or []
    return {ref.get("uid", "") for ref in refs if ref.get("kind") == "Job"}


class GarbageCollector(Controller):
    name = "garbage-collector"

    def __init__(self, store: Store, lifecycle: Lifecycle) -> None:
        super().__init__()
        self.store = store
        self.lifecycle = lifecycle
        self._lock = threading.Lock()
        self._dependents: dict[str, set[tuple[str, str]]] = {}  # owner uid -> pods
        self._owners: dict[str, tuple[str, str]] = {}  # owner uid -> Job (namespace, name)
        store.subscribe(["jobs", "pods"], self._on_change)

    def start(self) -> None:
        super().start()
        self.enqueue_at(_SWEEP, time.time() + 60)

    def _on_change(self, change: Change) -> None:
        meta = change.new.obj["metadata"]
        if change.resource == "pods":
            self._index_pod(change)
            return
        uid, key = meta["uid"], (meta.get("namespace", ""), meta["name"])
        if change.type == DELETED:
            self._owners.pop(uid, None)
            self.enqueue(("cascade", uid, key))
            return
        self._owners[uid] = key
        if meta.get("deletionTimestamp") and meta.get("finalizers"):
            self.enqueue(("finalize", uid, key))

    def _index_pod(self, change: Change) -> None:
        pod = change.new.obj
        key = (pod["metadata"]["namespace"], pod["metadata"]["name"])
        old = _owners(change.old.obj) if change.old is not None else set()
        new = set() if change.type == DELETED else _owners(pod)
        with self._lock:
            for uid in old - new:
                self._dependents.get(uid, set()).discard(key)
            for uid in new:
                self._dependents.setdefault(uid, set()).add(key)
        for uid in old - new:
            owner = self._owners.get(uid)
            if owner is not None:
                self.enqueue(("finalize", uid, owner))
        jobs = _owning_jobs(pod) if change.type != DELETED else set()
        if jobs and not any(uid in self._owners for uid in jobs):
            self.enqueue(("dangling", pod["metadata"]["uid"], key))

    def _pods_of(self, uid: str) -> list[tuple[str, str]]:
        with self._lock:
            return sorted(self._dependents.get(uid, ()))

    def sync(self, key: Any) -> None:
        if key == _SWEEP:
            self._sweep_events()
            return
        action, uid, (namespace, name) = key
        if action == "cascade":
            self._delete_dependents(uid)
            return
        if action == "dangling":
            self._delete_if_dangling(uid, namespace, name)
            return
        entry = self.store.get("jobs", namespace, name)
        if entry is None or entry.obj["metadata"]["uid"] != uid:
            return
        finalizers = entry.obj["metadata"].get("finalizers") or []
        if ORPHAN in finalizers:
            self._orphan(uid)
            self.lifecycle.remove_finalizer(resources.JOBS, namespace, name, ORPHAN)
        elif FOREGROUND in finalizers:
            self._delete_dependents(uid)
            if not self._pods_of(uid):
                self.lifecycle.remove_finalizer(resources.JOBS, namespace, name, FOREGROUND)

    def _delete_if_dangling(self, uid: str, namespace: str, name: str) -> None:
        entry = self.store.get("pods", namespace, name)
        if entry is None or entry.obj["metadata"]["uid"] != uid:
            return
        meta = entry.obj["metadata"]
        jobs = _owning_jobs(entry.obj)
        if meta.get("deletionTimestamp") or not jobs or any(j in self._owners for j in jobs):
            return
        try:
            self.lifecycle.delete(resources.PODS, namespace, name, uid=uid)
        except errors.ApiError as exc:
            log.debug("pod %s of a deleted job not deleted: %s", name, exc)

    def _delete_dependents(self, uid: str) -> None:
        for namespace, name in self._pods_of(uid):
            entry = self.store.get("pods", namespace, name)
            if entry is None or entry.obj["metadata"].get("deletionTimestamp"):
                continue
            try:
                self.lifecycle.delete(resources.PODS, namespace, name)
            except errors.ApiError as exc:
                log.debug("dependent %s not deleted: %s", name, exc)

    def _orphan(self, uid: str) -> None:
        def strip(obj: Obj) -> Obj | None:
            refs = obj["metadata"].get("ownerReferences") or []
            kept = [r for r in refs if r.get("uid") != uid]
            if len(kept) == len(refs):
                return None
            if kept:
                obj["metadata"]["ownerReferences"] = kept
            else:
                del obj["metadata"]["ownerReferences"]
            return obj

        for namespace, name in self._pods_of(uid):
            try:
                self.store.update("pods", namespace, name, strip)
            except NotFound:
                continue

    def _sweep_events(self) -> None:
        cutoff = time.time() - EVENT_TTL
        entries, _ = self.store.list("events")
        for entry in entries:
            stamp = entry.obj.get("lastTimestamp") or entry.obj["metadata"]["creationTimestamp"]
            if parse_timestamp(stamp) < cutoff:
                try:
                    self.store.delete("events", entry.namespace, entry.name)
                except NotFound:
                    continue
        self.enqueue_at(_SWEEP, time.time() + 60)
