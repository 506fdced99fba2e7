"""The job controller: pods for each Job, its counts and conditions, deadlines and TTL.

It follows the batch/v1 controller of recent Kubernetes: ``parallelism``/``completions``,
``backoffLimit`` (failed pods plus container restarts), ``activeDeadlineSeconds``, the
condition pairs ``SuccessCriteriaMet`` then ``Complete`` and ``FailureTarget`` then
``Failed`` (the second once no pod of the Job is still running), replacement of failed or
deleted pods, ``suspend``, and ``ttlSecondsAfterFinished`` (the Job is deleted in the
foreground, its pods first). Pods it has counted are remembered in memory, where the real
controller uses finalizers.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from localcluster.apiserver import errors, resources
from localcluster.apiserver.events import EventRecorder
from localcluster.apiserver.lifecycle import Lifecycle
from localcluster.apiserver.meta import parse_timestamp, timestamp
from localcluster.apiserver.registry import DELETED, Change, Store
from localcluster.controllers.controller import Controller
from localcluster.controllers.podtemplate import pod_from_template

log = logging.getLogger("localcluster.jobs")

Obj = dict[str, Any]
TERMINAL = ("Succeeded", "Failed")
COMPONENT = "job-controller"

REASONS = {
    "BackoffLimitExceeded": "Job has reached the specified backoff limit",
    "DeadlineExceeded": "Job was active longer than specified deadline",
}
SUCCESS = ("CompletionsReached", "Reached expected number of succeeded pods")


@dataclass
class _Counts:
    """The pods of one Job the controller has seen, by uid."""

    seen: set[str] = field(default_factory=set)
    succeeded: set[str] = field(default_factory=set)
    failed: set[str] = field(default_factory=set)


def owner_uid(obj: Obj) -> str | None:
    for ref in obj.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("controller") and ref.get("kind") == "Job":
            return ref.get("uid")
    return None


def condition(kind: str, reason: str, message: str, now: str) -> Obj:
    return {
        "type": kind,
        "status": "True",
        "lastProbeTime": now,
        "lastTransitionTime": now,
        "reason": reason,
        "message": message,
    }


def find_condition(status: Obj, kind: str) -> Obj | None:
    for cond in status.get("conditions") or []:
        if cond.get("type") == kind and cond.get("status") == "True":
            return cond
    return None


class JobController(Controller):
    name = "job-controller"

    def __init__(self, store: Store, lifecycle: Lifecycle, events: EventRecorder) -> None:
        super().__init__()
        self.store = store
        self.lifecycle = lifecycle
        self.events = events
        self._lock = threading.Lock()
        self._pods: dict[str, set[str]] = {}  # job uid -> names of its pods
        self._counts: dict[str, _Counts] = {}
        self._keys: dict[str, tuple[str, str]] = {}  # job uid -> (namespace, name)
        store.subscribe(["jobs", "pods"], self._on_change)

    # -- watching the store (called under the store lock: bookkeeping and enqueue only)

    def _on_change(self, change: Change) -> None:
        obj = change.new.obj
        meta = obj["metadata"]
        if change.resource == "jobs":
            self._keys[meta["uid"]] = (meta["namespace"], meta["name"])
            self.enqueue((meta["namespace"], meta["name"]))
            return
        uid = owner_uid(obj)
        if uid is None and change.old is not None:
            uid = owner_uid(change.old.obj)
        if uid is None:
            return
        with self._lock:
            names = self._pods.setdefault(uid, set())
            if change.type == DELETED or owner_uid(obj) != uid:
                names.discard(meta["name"])
            else:
                names.add(meta["name"])
        key = self._keys.get(uid)
        if key is not None:
            self.enqueue(key)

    # -- reconciling one Job

    def sync(self, key: Any) -> None:
        namespace, name = key
        entry = self.store.get("jobs", namespace, name)
        if entry is None:
            self._forget(namespace, name)
            return
        job = entry.obj
        if job["metadata"].get("deletionTimestamp"):
            return
        status = entry.copy().get("status") or {}
        if find_condition(status, "Complete") or find_condition(status, "Failed"):
            self._expire_if_due(job, status)
            return
        pods = self._pods_of(job)
        counts = self._count(job["metadata"]["uid"], pods)
        new_status = self._reconcile(job, status, pods, counts)
        if new_status != (job.get("status") or {}):
            self._write_status(namespace, name, job["metadata"]["uid"], new_status)
        if find_condition(new_status, "Complete") or find_condition(new_status, "Failed"):
            self._expire_if_due(job, new_status)

    def _forget(self, namespace: str, name: str) -> None:
        for uid, key in list(self._keys.items()):
            if key == (namespace, name):
                self._keys.pop(uid, None)
                self._counts.pop(uid, None)
                with self._lock:
                    self._pods.pop(uid, None)

    def _pods_of(self, job: Obj) -> list[Obj]:
        namespace = job["metadata"]["namespace"]
        with self._lock:
            names = sorted(self._pods.get(job["metadata"]["uid"], ()))
        pods = []
        for name in names:
            entry = self.store.get("pods", namespace, name)
            if entry is not None and owner_uid(entry.obj) == job["metadata"]["uid"]:
                pods.append(entry.obj)
        return pods

    def _count(self, uid: str, pods: list[Obj]) -> _Counts:
        counts = self._counts.setdefault(uid, _Counts())
        present = set()
        for pod in pods:
            pod_uid = pod["metadata"]["uid"]
            present.add(pod_uid)
            counts.seen.add(pod_uid)
            phase = pod.get("status", {}).get("phase")
            if pod_uid in counts.succeeded or pod_uid in counts.failed:
                continue
            if phase == "Succeeded":
                counts.succeeded.add(pod_uid)
            # With the default podReplacementPolicy a pod being deleted counts as failed
            # at once, as in the real controller.
            elif phase == "Failed" or pod["metadata"].get("deletionTimestamp"):
                counts.failed.add(pod_uid)
        # A pod that went away before finishing counts as failed, as with the real
        # controller's tracking finalizers.
        counts.failed |= counts.seen - present - counts.succeeded
        return counts

    def _reconcile(self, job: Obj, status: Obj, pods: list[Obj], counts: _Counts) -> Obj:
        spec = job["spec"]
        now = time.time()
        running = [p for p in pods if p.get("status", {}).get("phase") not in TERMINAL]
        active = [p for p in running if not p["metadata"].get("deletionTimestamp")]
        terminating = [p for p in running if p["metadata"].get("deletionTimestamp")]
        if spec.get("suspend"):
            return self._suspend(job, status, active, terminating, counts)
        _drop_condition(status, "Suspended")
        status.setdefault("startTime", timestamp(now))
        failure = None
        if not find_condition(status, "SuccessCriteriaMet"):
            failure = self._failure_reason(job, status, pods, counts, now)
        if failure is None and self._succeeded(spec, status, counts, active):
            active = self._finish(job, status, active, "SuccessCriteriaMet", SUCCESS)
            if not active and not terminating:
                self._add(job, status, "Complete", SUCCESS, event=("Completed", "Job completed"))
                status["completionTime"] = timestamp(now)
        elif failure is not None:
            message = REASONS.get(failure, failure)
            active = self._finish(job, status, active, "FailureTarget", (failure, message))
            if not active and not terminating:
                self._add(job, status, "Failed", (failure, message), event=(failure, message))
        else:
            active = active + self._create_pods(job, counts, len(active))
        status.update(
            active=len(active),
            ready=sum(1 for p in active if _pod_ready(p)),
            succeeded=len(counts.succeeded),
            failed=len(counts.failed),
            terminating=len(terminating),
            uncountedTerminatedPods={},
        )
        return {
            k: v for k, v in status.items() if v not in (0, None) or k in ("ready", "terminating")
        }

    def _failure_reason(
        self, job: Obj, status: Obj, pods: list[Obj], counts: _Counts, now: float
    ) -> str | None:
        target = find_condition(status, "FailureTarget")
        if target is not None:
            return target.get("reason", "")
        spec = job["spec"]
        deadline = spec.get("activeDeadlineSeconds")
        if deadline is not None:
            ends = parse_timestamp(status["startTime"]) + deadline
            if now >= ends:
                return "DeadlineExceeded"
            self.enqueue_at((job["metadata"]["namespace"], job["metadata"]["name"]), ends)
        restarts = 0
        if spec["template"]["spec"].get("restartPolicy") == "OnFailure":
            restarts = sum(_restarts(p) for p in pods)
        if len(counts.failed) + restarts > spec.get("backoffLimit", 6):
            return "BackoffLimitExceeded"
        return None

    def _succeeded(self, spec: Obj, status: Obj, counts: _Counts, active: list[Obj]) -> bool:
        if find_condition(status, "SuccessCriteriaMet"):
            return True
        completions = spec.get("completions")
        if completions is not None:
            return len(counts.succeeded) >= completions
        # Work-queue Jobs (no completions): done once one pod succeeded and none is left.
        return bool(counts.succeeded) and not active

    def _finish(
        self, job: Obj, status: Obj, active: list[Obj], kind: str, why: tuple[str, str]
    ) -> list[Obj]:
        """Mark the outcome and stop the pods still running; returns those left active."""
        self._add(job, status, kind, why)
        for pod in active:
            self._delete_pod(pod)
        return []

    def _suspend(
        self, job: Obj, status: Obj, active: list[Obj], terminating: list[Obj], counts: _Counts
    ) -> Obj:
        for pod in active:
            self._delete_pod(pod)
        if not find_condition(status, "Suspended"):
            self._add(job, status, "Suspended", ("JobSuspended", "Job suspended"))
        status.pop("startTime", None)
        status.update(
            active=0,
            ready=0,
            succeeded=len(counts.succeeded),
            failed=len(counts.failed),
            terminating=len(active) + len(terminating),
        )
        return {
            k: v for k, v in status.items() if v not in (0, None) or k in ("ready", "terminating")
        }

    def _add(
        self,
        job: Obj,
        status: Obj,
        kind: str,
        why: tuple[str, str],
        *,
        event: tuple[str, str] | None = None,
    ) -> None:
        if find_condition(status, kind):
            return
        status.setdefault("conditions", []).append(condition(kind, why[0], why[1], timestamp()))
        if event is not None:
            meta = job["metadata"]
            log.info("job %s/%s: %s (%s)", meta["namespace"], meta["name"], kind, why[0])
            self.events.record(
                job, event[0], event[1], warning=kind == "Failed", component=COMPONENT
            )

    def _delete_pod(self, pod: Obj) -> None:
        meta = pod["metadata"]
        try:
            self.lifecycle.delete(resources.PODS, meta["namespace"], meta["name"], uid=meta["uid"])
        except errors.ApiError as exc:
            log.debug("pod %s not deleted: %s", meta["name"], exc)

    def _create_pods(self, job: Obj, counts: _Counts, active: int) -> list[Obj]:
        spec = job["spec"]
        parallelism = spec.get("parallelism", 1)
        completions = spec.get("completions")
        if completions is None:
            wanted = 0 if counts.succeeded else parallelism
        else:
            wanted = min(parallelism, completions - len(counts.succeeded))
        created = []
        for _ in range(max(wanted - active, 0)):
            if not self._still_wanted(job):
                break  # deleted meanwhile: no more pods for it
            pod = pod_from_template(job)
            entry = self.lifecycle.create(
                resources.PODS, pod, namespace=job["metadata"]["namespace"]
            )
            with self._lock:
                self._pods.setdefault(job["metadata"]["uid"], set()).add(entry.name)
            self.events.record(
                job, "SuccessfulCreate", f"Created pod: {entry.name}", component=COMPONENT
            )
            created.append(entry.obj)
        return created

    def _still_wanted(self, job: Obj) -> bool:
        meta = job["metadata"]
        entry = self.store.get("jobs", meta["namespace"], meta["name"])
        return (
            entry is not None
            and entry.obj["metadata"]["uid"] == meta["uid"]
            and not entry.obj["metadata"].get("deletionTimestamp")
        )

    def _write_status(self, namespace: str, name: str, uid: str, status: Obj) -> None:
        def put(obj: Obj) -> Obj | None:
            if obj["metadata"]["uid"] != uid or obj.get("status") == status:
                return None
            obj["status"] = status
            return obj

        try:
            self.store.update("jobs", namespace, name, put)
        except Exception as exc:  # the Job went away meanwhile
            log.debug("status of job %s not written: %s", name, exc)

    def _expire_if_due(self, job: Obj, status: Obj) -> None:
        ttl = job["spec"].get("ttlSecondsAfterFinished")
        if ttl is None:
            return
        finished = status.get("completionTime")
        if finished is None:
            failed = find_condition(status, "Failed")
            finished = failed and failed.get("lastTransitionTime")
        if not finished:
            return
        due = parse_timestamp(finished) + ttl
        meta = job["metadata"]
        if time.time() < due:
            self.enqueue_at((meta["namespace"], meta["name"]), due)
            return
        try:
            self.lifecycle.delete(
                resources.JOBS,
                meta["namespace"],
                meta["name"],
                propagation="Foreground",
                uid=meta["uid"],
            )
        except errors.ApiError as exc:
            log.debug("expired job %s not deleted: %s", meta["name"], exc)


def _drop_condition(status: Obj, kind: str) -> None:
    if status.get("conditions"):
        status["conditions"] = [c for c in status["conditions"] if c.get("type") != kind]
        if not status["conditions"]:
            del status["conditions"]


def _pod_ready(pod: Obj) -> bool:
    for cond in pod.get("status", {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return False


def _restarts(pod: Obj) -> int:
    status = pod.get("status", {})
    statuses = [
        *(status.get("initContainerStatuses") or []),
        *(status.get("containerStatuses") or []),
    ]
    return sum(s.get("restartCount", 0) for s in statuses)
