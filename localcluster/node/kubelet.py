"""The kubelet: runs each pod's containers as local processes and reports their status.

It starts a ``PodWorker`` (see ``podworker``) for every new pod, handing it a
``WorkerContext`` with the parts of the node it uses, tells workers when their pod is being
deleted, answers questions about running containers (for logs and tests), and rewrites
projected service account tokens before they expire.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from localcluster.apiserver.events import EventRecorder
from localcluster.apiserver.lifecycle import Lifecycle
from localcluster.apiserver.registry import DELETED, Change, Store
from localcluster.node.memory import MemoryLimiter
from localcluster.node.podworker import PodWorker, WorkerContext
from localcluster.node.runtime import Janitor
from localcluster.node.security import Isolation, rewrite_file

log = logging.getLogger("localcluster.kubelet")

Obj = dict[str, Any]
# Under the state directory: the directories persistentVolumeClaim volumes stand for.
CLAIMS_DIR = "volumes"


@dataclass(frozen=True)
class KubeletConfig:
    """Where pods live on disk, how their volumes are mounted, how they reach the API."""

    state_dir: Path
    mount_mode: str
    service: tuple[str, int] | None  # where pods reach the API (TLS only)
    stop_grace: float = 2.0
    # What containers run as and see (None: what the mount mode alone gives).
    isolation: Isolation | None = None


class Kubelet:
    """Starts a worker for every pod, stops them on deletion, rotates pod tokens."""

    def __init__(
        self,
        store: Store,
        lifecycle: Lifecycle,
        events: EventRecorder,
        memory: MemoryLimiter,
        config: KubeletConfig,
        *,
        token_for: Callable[[Obj, int], str],
        janitor: Janitor,
    ) -> None:
        self.config = config
        self.token_for = token_for
        self._context = WorkerContext(
            store=store,
            lifecycle=lifecycle,
            events=events,
            memory=memory,
            janitor=janitor,
            token_for=token_for,
            pods_dir=config.state_dir / "pods",
            claims_dir=config.state_dir / CLAIMS_DIR,
            mount_mode=config.mount_mode,
            isolation=config.isolation
            or Isolation(config.mount_mode, False, "", os.geteuid() == 0, ()),
            service=config.service,
            forget=self.forget,
        )
        self._workers: dict[str, PodWorker] = {}
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._rotator = threading.Thread(
            target=self._rotate_tokens, name="localcluster-tokens", daemon=True
        )
        self._changes: queue.SimpleQueue[Change | None] = queue.SimpleQueue()
        self._dispatcher = threading.Thread(
            target=self._dispatch, name="localcluster-kubelet", daemon=True
        )
        store.subscribe(["pods"], self._on_change)

    def start(self) -> None:
        self._rotator.start()
        self._dispatcher.start()

    def _on_change(self, change: Change) -> None:
        # Called under the store lock: pod workers take their own lock before the store's,
        # so the work is handed to the dispatcher thread rather than done here.
        self._changes.put(change)

    def _dispatch(self) -> None:
        while True:
            change = self._changes.get()
            if change is None:
                return
            try:
                self._handle(change)
            except Exception:
                log.exception("kubelet failed to handle a pod change")

    def _handle(self, change: Change) -> None:
        pod = change.new.obj
        uid = pod["metadata"]["uid"]
        with self._lock:
            worker = self._workers.get(uid)
            if worker is None and change.type != DELETED and not self._stopped.is_set():
                phase = pod.get("status", {}).get("phase")
                if phase in ("Succeeded", "Failed") or pod["metadata"].get("deletionTimestamp"):
                    return
                worker = PodWorker(self._context, pod)
                self._workers[uid] = worker
                worker.thread.start()
                return
        if worker is None:
            return
        if change.type == DELETED:
            worker.request_stop(0, removed=True)
        elif pod["metadata"].get("deletionTimestamp"):
            worker.request_stop(float(pod["metadata"].get("deletionGracePeriodSeconds") or 0))

    def forget(self, worker: PodWorker) -> None:
        with self._lock:
            self._workers.pop(worker.uid, None)

    def worker(self, uid: str) -> PodWorker | None:
        with self._lock:
            return self._workers.get(uid)

    def log_path(self, uid: str, container: str) -> Path | None:
        worker = self.worker(uid)
        if worker is None:
            return None
        path = worker.directory / "logs" / f"{container}.log"
        return path if path.exists() else None

    def running(self, uid: str, container: str) -> bool:
        worker = self.worker(uid)
        if worker is None:
            return False
        with worker.lock:
            return container in worker.processes

    def pids(self) -> dict[tuple[str, str, str], int]:
        """(namespace, pod, container) -> pid of every running container process."""
        with self._lock:
            workers = list(self._workers.values())
        found = {}
        for worker in workers:
            with worker.lock:
                for name, process in worker.processes.items():
                    found[(worker.namespace, worker.name, name)] = process.pid
        return found

    def finished_at(self, namespace: str, pod: str, container: str) -> float | None:
        with self._lock:
            workers = list(self._workers.values())
        for worker in workers:
            if (worker.namespace, worker.name) == (namespace, pod):
                return worker.finished_at.get(container)
        return None

    def _rotate_tokens(self) -> None:
        # The real kubelet refreshes projected tokens at 80 % of their lifetime.
        while not self._stopped.wait(30):
            with self._lock:
                workers = list(self._workers.values())
            for worker in workers:
                for path, expiration in worker.token_files():
                    try:
                        age = time.time() - path.stat().st_mtime
                    except OSError:
                        continue
                    pod = worker.pod()
                    if age > 0.8 * expiration and pod is not None:
                        with contextlib.suppress(OSError):  # the pod is going
                            rewrite_file(path, self.token_for(pod, expiration).encode())

    def stop(self) -> None:
        """End every container process: SIGTERM, then SIGKILL after a short grace."""
        self._stopped.set()
        self._changes.put(None)
        self._dispatcher.join(timeout=5)
        with self._lock:
            workers = list(self._workers.values())
        for worker in workers:
            worker.request_stop(self.config.stop_grace, removed=True)
        deadline = time.monotonic() + self.config.stop_grace + 3
        for worker in workers:
            worker.thread.join(timeout=max(deadline - time.monotonic(), 0.1))
