"""What the REST API does with jobs: submit, report, list and delete them.

Reports come from the watch-fed cache when it is in step with the cluster, else
from Kubernetes directly; the processor's logs are read only once it has
started, and kept once it has ended (they cannot change any more).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Generic, TypeVar

from pman.cache import StatusCache
from pman.errors import Forbidden, JobExists, JobNotFound, PmanError, RunEnding
from pman.jobspec import (
    FRONT_END_LABEL,
    JID_LABEL,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    SELECTOR,
    as_given,
    build_job,
    jid_selector,
    new_run,
    pick_user,
    run_of,
)
from pman.kube import Kube
from pman.logs import CACHE_BYTES, LogCache, tail_of_log
from pman.metrics import Metrics
from pman.models import JobRequest
from pman.pod import PROCESSOR
from pman.settings import Settings
from pman.status import (
    JobState,
    job_state,
    logs_placeholder,
    pods_behind,
    processor_finished,
    processor_started,
    representative_pod,
)
from pman.tempurls import TempUrls

Obj = dict[str, Any]
K = TypeVar("K")
V = TypeVar("V")


class JobService:
    """Jobs in one namespace, as the REST API sees them."""

    def __init__(
        self,
        settings: Settings,
        kube: Kube,
        *,
        cache: StatusCache | None = None,
        metrics: Metrics | None = None,
        tempurls: TempUrls | None = None,
    ) -> None:
        self.settings = settings
        self.kube = kube
        self.tempurls = tempurls
        """With ``SWIFT_POD_CREDENTIALS=tempurl``: each job's URLs and stage-in plan."""
        self.cache = cache
        self.metrics = metrics or kube.metrics
        self._logs = LogCache(capacity=CACHE_BYTES, on_change=self.metrics.cached_log_bytes.set)
        self._asked: Lru[str, str] = Lru(capacity=512)  # Job versions whose pods were asked for

    def info(self) -> dict[str, str]:
        """What ``GET /api/v1/`` reports."""
        return {
            "server_version": self.settings.server_version,
            "container_env": self.settings.container_env,
            "storage_type": self.settings.storage_type,
        }

    def submit(self, request: JobRequest) -> Obj:
        """Create the job's Kubernetes Job; its object with empty logs.

        A jid may be submitted again after its DELETE, but not while pods of the earlier
        run are still ending (they get their grace period, and may still publish): two runs
        must never write into the same output at once.
        """
        self._refuse_while_ending(request.jid)
        uid, gid = pick_user(self.settings.container_user)
        run = new_run()
        access = self.tempurls.v6_access(request, run) if self.tempurls else None
        job = build_job(request, self.settings, run=run, uid=uid, gid=gid, access=access)
        try:
            created = self.kube.create_job(job)
        except PmanError:
            if access is not None and self.tempurls:  # its plan holds URLs no job will use
                self.tempurls.delete_plan(request.jid, run)
            raise
        self.metrics.jobs_submitted.inc()
        return job_object(created, job_state(created, []), logs="")

    def get(self, jid: str) -> Obj:
        """The job object with the processor's latest logs."""
        job, pods = self._observe(jid)
        state = job_state(job, pods)
        return job_object(job, state, logs=self._read_logs(state, representative_pod(pods)))

    def list(self) -> list[Obj]:
        """Every job pman manages in its namespace, without logs."""
        cached = self.cache.everything() if self.cache else None
        if cached is None:
            pairs = self._observe_all()
        else:
            pairs = [(job, pods_of_run(job, pods)) for job, pods in cached]
        objects = [job_object(job, job_state(job, pods), logs="") for job, pods in pairs]
        return sorted(objects, key=lambda obj: obj["jid"])

    def delete(self, jid: str) -> None:
        """Delete the job (its pods follow); 404 when there is none."""
        job, _ = self._observe(jid)  # 404 for an unknown job, or one pman did not create
        if not self.settings.remove_jobs:
            return
        self.kube.delete_job(jid, uid=job["metadata"].get("uid"))
        self._logs.forget(jid)
        if self.cache:
            self.cache.forget(jid)
        if self.tempurls and FRONT_END_LABEL not in _labels(job):
            self.tempurls.delete_plans(jid)  # a pfcon job's go with it (pman.pfconjobs)

    def _refuse_while_ending(self, jid: str) -> None:
        try:
            pods, _ = self.kube.list_pods(jid_selector(jid))
        except Forbidden:
            return  # the create is refused too, and its answer names what the client asked
        if not pods:
            return
        try:
            self._read_job(jid)
        except JobNotFound:
            seconds = self.settings.job_grace_seconds
            raise RunEnding(
                f"job {jid!r} was deleted and {len(pods)} of its pods are still ending "
                f"(they get up to {seconds} s): submit it again once they are gone"
            ) from None
        raise JobExists(f"a job {jid!r} already exists")

    def ready(self) -> None:
        """Raise unless Kubernetes answers (or the watches are in step with it)."""
        if not (self.cache and self.cache.synced):
            self.kube.list_jobs(SELECTOR, limit=1)

    def job(self, jid: str) -> Obj:
        """The Job pman created for ``jid``; :class:`JobNotFound` when there is none."""
        hit = self._cached(jid)
        return hit[0] if hit is not None else self._read_job(jid)

    def pods(self, jid: str) -> list[Obj]:
        """The pods of job ``jid``'s current run (none for an unknown jid)."""
        hit = self._cached(jid)
        if hit is not None:
            return hit[1]
        pods = self.kube.list_pods(jid_selector(jid))[0]
        try:
            return pods_of_run(self.job(jid), pods)
        except JobNotFound:
            return []

    def _observe(self, jid: str) -> tuple[Obj, list[Obj]]:
        hit = self._cached(jid)
        if hit is not None:
            job, pods = hit
            return (job, self._pods_of_ended(jid, job, pods)) if pods_behind(job, pods) else hit
        job = self._read_job(jid)
        pods, _ = self.kube.list_pods(jid_selector(jid))
        return job, pods_of_run(job, pods)

    def _pods_of_ended(self, jid: str, job: Obj, cached: list[Obj]) -> list[Obj]:
        """The pods of a Job whose end the cache shows before its pods show how (the Jobs'
        watch ahead of the pods'): asked of Kubernetes, since they say why it ended and hold
        its last logs. Once per version of the Job when they show it no better (they may
        simply be gone); the cached ones when Kubernetes cannot be asked."""
        meta = job["metadata"]
        version = f"{meta.get('uid', '')}/{meta.get('resourceVersion', '')}"
        if self._asked.get(version) is not None:
            return cached
        try:
            pods = pods_of_run(job, self.kube.list_pods(jid_selector(jid))[0])
        except PmanError:
            return cached
        if pods_behind(job, pods):
            self._asked.put(version, "")
        return pods

    def _cached(self, jid: str) -> tuple[Obj, list[Obj]] | None:
        hit = self.cache.lookup(jid) if self.cache else None
        return None if hit is None else (hit[0], pods_of_run(*hit))

    def _read_job(self, jid: str) -> Obj:
        job = self.kube.read_job(jid)
        if not _is_ours(job):
            raise JobNotFound(f"no job {jid!r}")
        return job

    def _observe_all(self) -> list[tuple[Obj, list[Obj]]]:
        jobs, _ = self.kube.list_jobs(SELECTOR)
        pods, _ = self.kube.list_pods(SELECTOR)
        by_jid: dict[str, list[Obj]] = {}
        for pod in pods:
            by_jid.setdefault(_labels(pod).get(JID_LABEL, ""), []).append(pod)
        return [(job, pods_of_run(job, by_jid.get(job["metadata"]["name"], []))) for job in jobs]

    def _read_logs(self, state: JobState, pod: Obj | None) -> str:
        if pod is None or not processor_started(pod):
            return logs_placeholder(state)
        uid = pod["metadata"].get("uid", "")
        if (kept := self._logs.get(uid)) is not None:
            return kept
        finished = processor_finished(pod)
        name = pod["metadata"]["name"]
        text = tail_of_log(
            lambda tail, limit: self.kube.read_log(name, PROCESSOR, tail=tail, limit=limit),
            lines=self.settings.job_logs_tail,
            max_bytes=self.settings.job_logs_max_bytes,
        )
        if text is None:
            return logs_placeholder(state)
        if finished:
            self._logs.put(_labels(pod).get(JID_LABEL, ""), uid, text)
        return text

    # -- for the pfcon API (pman.pfconjobs): jobs built elsewhere, and their Job objects ----

    def create(self, job: Obj) -> Obj:
        """Create a Job built by the caller (as :meth:`submit` does); its object."""
        self._refuse_while_ending(job["metadata"]["name"])
        created = self.kube.create_job(job)
        self.metrics.jobs_submitted.inc()
        return job_object(created, job_state(created, []), logs="")

    def report(self, jid: str, *, logs: bool = True) -> tuple[Obj, Obj, JobState]:
        """The job object (with logs, as :meth:`get`, unless not ``logs``: then none are
        read), the Job it comes from and its state."""
        job, pods = self._observe(jid)
        state = job_state(job, pods)
        text = self._read_logs(state, representative_pod(pods)) if logs else ""
        return job_object(job, state, logs=text), job, state

    def all_pods(self, jid: str) -> list[Obj]:
        """The pods of every run of ``jid``, those still ending included."""
        return self.kube.list_pods(jid_selector(jid))[0]


def job_object(job: Obj, state: JobState, *, logs: str) -> Obj:
    """The contract's job object plus ``phase`` and ``reason``."""
    processor = _processor(job)
    return {
        "jid": job["metadata"]["name"],
        "image": processor.get("image", ""),
        "cmd": " ".join(as_given(word) for word in processor.get("command") or []),
        "status": state.status,
        "message": state.message,
        "timestamp": state.timestamp,
        "logs": logs,
        "phase": state.phase,
        "reason": state.reason,
    }


def _processor(job: Obj) -> Obj:
    containers = job.get("spec", {}).get("template", {}).get("spec", {}).get("containers") or []
    for container in containers:
        if container.get("name") == PROCESSOR:
            return container
    return containers[0] if containers else {}


def pods_of_run(job: Obj, pods: list[Obj]) -> list[Obj]:
    """The pods of the Job's own run: not those of an earlier run of the same jid that are
    still ending (nor, for a Job made without a run id, any other)."""
    run = run_of(job)
    return [pod for pod in pods if run_of(pod) == run]


def _labels(obj: Obj) -> dict[str, str]:
    return (obj.get("metadata") or {}).get("labels") or {}


def _is_ours(job: Obj) -> bool:
    return _labels(job).get(MANAGED_BY_LABEL) == MANAGED_BY


class Lru(Generic[K, V]):
    """A small thread-safe LRU mapping."""

    def __init__(self, *, capacity: int) -> None:
        self._capacity = capacity
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            return None

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._capacity:
                self._items.popitem(last=False)
