"""One pod's life on the local node, from admission to removal.

A worker thread places the pod on the node (or marks it unschedulable), sets up its
volumes, runs the init containers one after another and then all containers side by side,
each from its own thread (the kernel's parent-death signal is tied to the thread that
started the process). A container's termination is written to the pod's status the moment
its process is reaped, so watchers see it within milliseconds. Deleting a pod sends
SIGTERM to its containers' process groups and SIGKILL after the grace period. A pod past
its own ``spec.activeDeadlineSeconds`` fails (reason DeadlineExceeded) and its containers
are stopped the same way, but the pod stays.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from localcluster.apiserver.events import NODE_NAME, EventRecorder
from localcluster.apiserver.lifecycle import Lifecycle
from localcluster.apiserver.meta import parse_quantity
from localcluster.apiserver.podspec import GRACE_SECONDS
from localcluster.apiserver.registry import NotFound, Store
from localcluster.node import mounts, security
from localcluster.node.memory import Limited, MemoryLimiter
from localcluster.node.podstatus import DEADLINE_MESSAGE, ContainerRun, PodRun, pod_status
from localcluster.node.runtime import (
    ConfigError,
    Janitor,
    LaunchSpec,
    Process,
    StartFailed,
    base_env,
    container_env,
    expand,
    home_of,
    image_paths,
)
from localcluster.node.scheduling import unschedulable_reason
from localcluster.node.volumes import (
    SubPathError,
    VolumeBuilder,
    VolumeNotReady,
    read_only_volumes,
    subpath_source,
    token_paths,
)

log = logging.getLogger("localcluster.kubelet")

Obj = dict[str, Any]
IMAGE_PATHS = image_paths()


@dataclass(frozen=True)
class WorkerContext:
    """What a pod worker uses of the node it runs on; the kubelet makes one for all."""

    store: Store
    lifecycle: Lifecycle
    events: EventRecorder
    memory: MemoryLimiter
    janitor: Janitor
    token_for: Callable[[Obj, int], str]  # a service account token for (pod, seconds)
    pods_dir: Path  # each pod's volumes and logs go in a directory of its own under it
    claims_dir: Path  # persistentVolumeClaim volumes: <claims_dir>/<namespace>/<claim>
    mount_mode: str
    isolation: security.Isolation  # what containers run as and see
    service: tuple[str, int] | None  # where containers reach the API (TLS only)
    forget: Callable[[PodWorker], None]  # called once the worker has let its pod go


class PodWorker:
    """Runs one pod from admission to removal."""

    def __init__(self, context: WorkerContext, pod: Obj) -> None:
        self.context = context
        meta = pod["metadata"]
        self.namespace, self.name, self.uid = meta["namespace"], meta["name"], meta["uid"]
        self.spec = pod["spec"]
        self.directory = context.pods_dir / f"{self.namespace}_{self.name}_{self.uid}"
        self.run = PodRun()
        self.containers = [
            ContainerRun(c["name"], c.get("image", ""), init=True)
            for c in self.spec.get("initContainers") or []
        ] + [ContainerRun(c["name"], c.get("image", "")) for c in self.spec.get("containers") or []]
        waiting = "PodInitializing" if self.spec.get("initContainers") else "ContainerCreating"
        for container in self.containers:
            container.waiting_reason = waiting
        self.volumes: dict[str, Path] = {}
        self.processes: dict[str, Process] = {}
        self.finished_at: dict[str, float] = {}
        self.lock = threading.RLock()
        self.stopping = threading.Event()
        self.removed = False
        self.done = False
        self.wound_down = False
        self.thread = threading.Thread(target=self._main, name=f"pod-{self.name}", daemon=True)

    # -- status

    def pod(self) -> Obj | None:
        entry = self.context.store.get("pods", self.namespace, self.name)
        if entry is None or entry.obj["metadata"]["uid"] != self.uid:
            return None
        return entry.obj

    def publish(self) -> None:
        """Write the pod's status as it is now (no write when nothing changed)."""
        with self.lock:

            def put(obj: Obj) -> Obj | None:
                if obj["metadata"]["uid"] != self.uid:
                    return None
                status = pod_status(obj, self.run, self.containers)
                if status == obj.get("status"):
                    return None
                obj["status"] = status
                return obj

            with contextlib.suppress(NotFound):
                self.context.store.update("pods", self.namespace, self.name, put)

    def event(
        self, reason: str, message: str, *, warning: bool = False, container: str = ""
    ) -> None:
        pod = self.pod()
        if pod is not None:
            path = f"spec.containers{{{container}}}" if container else ""
            self.context.events.record(pod, reason, message, warning=warning, field_path=path)

    # -- the pod's life

    def _main(self) -> None:
        try:
            if self._admit():
                threading.Thread(
                    target=self._watch_deadline, name=f"{self.name}-deadline", daemon=True
                ).start()
                if self._prepare():
                    self._run_containers()
        except Exception:
            log.exception("pod %s/%s failed in the kubelet", self.namespace, self.name)
        with self.lock:
            self.done = True
            stopping = self.stopping.is_set()
        if stopping:
            self._wind_down()

    def _admit(self) -> bool:
        pod = self.pod()
        if pod is None:
            return False
        reason = unschedulable_reason(pod)
        if reason is not None:
            self.run.scheduled = False
            self.run.unschedulable_message = reason
            self.publish()
            return False

        def bind(obj: Obj) -> Obj:
            obj["spec"]["nodeName"] = NODE_NAME
            return obj

        try:
            self.context.store.update("pods", self.namespace, self.name, bind)
        except NotFound:
            return False
        self.run.start_time = time.time()
        self.publish()
        self.context.events.record(
            pod,
            "Scheduled",
            f"Successfully assigned {self.namespace}/{self.name} to {NODE_NAME}",
            component="default-scheduler",
        )
        return True

    def _prepare(self) -> bool:
        (self.directory / "logs").mkdir(parents=True, exist_ok=True)
        (self.directory / "scratch").mkdir(exist_ok=True)
        reported = ""
        while not self.stopping.is_set():
            pod = self.pod()
            if pod is None:
                return False
            builder = VolumeBuilder(
                self.context.store,
                pod,
                self.directory / "volumes",
                token=self._token,
                claims=self.context.claims_dir,
            )
            try:
                self.volumes = builder.build()
                security.own_volumes(pod, self.volumes)
                break
            except VolumeNotReady as exc:
                if str(exc) != reported:
                    reported = str(exc)
                    self.event("FailedMount", reported, warning=True)
                self.stopping.wait(0.5)
        if self.stopping.is_set():
            return False
        self.run.sandbox_ready = True
        self.publish()
        self.event(
            "VolumesMounted",
            f"Volumes reach the containers through {mounts.DESCRIPTIONS[self.context.mount_mode]}",
        )
        return True

    def _watch_deadline(self) -> None:
        """Fail the pod once it has been active longer than its ``activeDeadlineSeconds``.

        The field may be set or lowered while the pod runs, so it is read again at least
        every second; otherwise the thread sleeps until the deadline.
        """
        wait = 0.0
        while not self.stopping.wait(wait):
            pod = self.pod()
            if pod is None or self.done:
                return
            seconds = pod["spec"].get("activeDeadlineSeconds")
            start = self.run.start_time
            left = 1.0 if seconds is None or start is None else start + seconds - time.time()
            if left > 0:
                wait = min(left, 1.0)
                continue
            with self.lock:
                mains = [c for c in self.containers if not c.init]
                if self.done or self.stopping.is_set() or all(c.terminated for c in mains):
                    return  # it ended in time
                self.run.deadline_exceeded = True
                running = dict(self.processes)
            self.publish()
            self.event("DeadlineExceeded", DEADLINE_MESSAGE)  # a Normal event, as the kubelet's
            grace = pod["spec"].get("terminationGracePeriodSeconds", GRACE_SECONDS)
            self._signal(running, float(grace))
            return

    def _halted(self) -> bool:
        """No container may start or restart: the pod is being deleted or is past its deadline."""
        return self.stopping.is_set() or self.run.deadline_exceeded

    def _token(self, expiration: int) -> str:
        return self.context.token_for(self.pod() or {"metadata": {}, "spec": self.spec}, expiration)

    def _run_containers(self) -> None:
        specs = {
            c["name"]: c
            for c in [*(self.spec.get("initContainers") or []), *self.spec["containers"]]
        }
        for run in [c for c in self.containers if c.init]:
            if not self._run_one(run, specs[run.name]):
                if not self._halted():
                    self.run.init_failed = True
                    self.publish()
                return
        mains = [c for c in self.containers if not c.init]
        for run in mains:
            run.waiting_reason = "ContainerCreating"
        threads = [
            threading.Thread(
                target=self._run_one,
                args=(run, specs[run.name]),
                name=f"{self.name}-{run.name}",
                daemon=True,
            )
            for run in mains
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def _run_one(self, run: ContainerRun, container: Obj) -> bool:
        """Run a container until it ends for good; returns whether it succeeded."""
        restarts = self.spec.get("restartPolicy") == "OnFailure"
        while not self._halted():
            if not self._start_and_wait(run, container):
                continue
            if run.exit_code == 0 or not restarts or self._halted():
                return run.exit_code == 0
            self.stopping.wait(min(0.5 * 2**run.restart_count, 10.0))
            if self._halted():
                break
            with self.lock:
                run.last_state = run.state()
                run.restart_count += 1
                run.started_at = run.finished_at = run.exit_code = None
                run.reason = run.message = ""
                run.waiting_reason = "CrashLoopBackOff"
            self.publish()
        return False

    def _start_and_wait(self, run: ContainerRun, container: Obj) -> bool:
        """Start and wait for the process; False if it must be retried (config not ready)."""
        try:
            spec = self._launch_spec(container)
        except ConfigError as exc:
            with self.lock:
                run.waiting_reason, run.waiting_message = "CreateContainerConfigError", str(exc)
            self.publish()
            self.stopping.wait(1.0)
            return False
        limit = (container.get("resources") or {}).get("limits", {}).get("memory")
        limited = None
        if limit is not None:
            limited = self.context.memory.prepare(
                f"{self.uid}-{run.name}", int(parse_quantity(limit))
            )
            spec.cgroup = str(limited.procs) if limited.procs else None
        process = self._spawn(run, spec, limited)
        if process is not None:
            code = process.wait()
            fallback = container.get("terminationMessagePolicy") == "FallbackToLogsOnError"
            self._reap(run, process, code, limited, limit, fallback=fallback)
        return True

    def _spawn(
        self, run: ContainerRun, spec: LaunchSpec, limited: Limited | None
    ) -> Process | None:
        """Start the container's process and report it running (None if it did not start)."""
        with self.lock:
            if self._halted():
                return None
            try:
                process = Process(
                    spec,
                    spec_path=self.directory / f"{run.name}.launch.json",
                    log_path=self.directory / "logs" / f"{run.name}.log",
                )
            except StartFailed as exc:
                self._ended(run, 128, "StartError", str(exc))
                if limited is not None:
                    self.context.memory.finished(limited)
                self.event("Failed", f"Error: {exc}", warning=True, container=run.name)
                return None
            self.processes[run.name] = process
            self.context.janitor.watch(process)
            run.started_at = time.time()
            run.container_id = f"localcluster://{uuid.uuid4().hex}"
            run.waiting_reason = run.waiting_message = ""
        if limited is not None:
            self.context.memory.started(limited, process.pid)
        self.publish()
        self.event("Started", f"Started container {run.name}", container=run.name)
        log.info(
            "%s/%s: container %s started (pid %d)", self.namespace, self.name, run.name, process.pid
        )
        return process

    def _reap(
        self,
        run: ContainerRun,
        process: Process,
        code: int,
        limited: Limited | None,
        limit: Any,
        *,
        fallback: bool = False,
    ) -> None:
        """Report the container's end at once (publish latency depends on it), then clean up."""
        finished = time.time()
        oom = limited is not None and self.context.memory.oom_killed(limited)
        failed = oom or code != 0
        message = self._log_tail(run.name) if fallback and failed else ""
        with self.lock:
            self.processes.pop(run.name, None)
            self.finished_at[run.name] = finished
            if oom:
                self._ended(run, 137, "OOMKilled", message, finished)
            else:
                self._ended(run, code, "Completed" if code == 0 else "Error", message, finished)
        log.info(
            "%s/%s: container %s terminated: %s, exit code %d",
            self.namespace,
            self.name,
            run.name,
            run.reason,
            run.exit_code,
        )
        process.kill_group()  # like a runtime, end what the container left behind
        self.context.janitor.forget(process)
        if limited is not None:
            self.context.memory.kill_all(limited)
            self.context.memory.finished(limited)
        if oom:
            message = f"Container {run.name} was killed: memory limit {limit} reached"
            self.event("OOMKilled", message, warning=True, container=run.name)

    def _log_tail(self, container: str) -> str:
        """What ``FallbackToLogsOnError`` puts in the message: the log's last 80 lines, at
        most 2 KiB of them, as the kubelet does (no termination message file is written)."""
        # 80 lines cut to 2 KiB never reach further back than the last 2 KiB.
        try:
            with open(self.directory / "logs" / f"{container}.log", "rb") as log_file:
                log_file.seek(max(0, log_file.seek(0, os.SEEK_END) - 2048))
                data = log_file.read()
        except OSError:
            return ""
        return b"".join(data.splitlines(keepends=True)[-80:]).decode("utf-8", errors="replace")

    def _ended(
        self, run: ContainerRun, code: int, reason: str, message: str, when: float | None = None
    ) -> None:
        with self.lock:
            run.finished_at = when or time.time()
            run.exit_code, run.reason, run.message = code, reason, message
        self.publish()

    def _launch_spec(self, container: Obj) -> LaunchSpec:
        pod = self.pod() or {
            "metadata": {"name": self.name, "namespace": self.namespace, "uid": self.uid},
            "spec": self.spec,
        }
        isolation = self.context.isolation
        identity = security.container_identity(pod, container, switch=isolation.switches_users)
        uid = identity.uid
        home = home_of(uid if uid is not None else os.getuid())
        env, declared = container_env(
            pod,
            container,
            base_env(pod, home=home, service=self.context.service),
            self.context.store,
        )
        argv = [
            expand(a, declared)
            for a in [*(container.get("command") or []), *(container.get("args") or [])]
        ]
        cwd = container.get("workingDir") or "/"
        mode = self.context.mount_mode
        volume_mounts = self._mounts(container)
        if mode == mounts.REWRITE:
            rewrite = mounts.PathRewriter({m["target"]: m["source"] for m in volume_mounts})
            argv = [rewrite(a) for a in argv]
            env = {k: rewrite(v) for k, v in env.items()}
            cwd = rewrite(cwd)
            volume_mounts = []
        no_new_privs = (container.get("securityContext") or {}).get("allowPrivilegeEscalation")
        return LaunchSpec(
            argv=argv,
            env=env,
            cwd=cwd,
            mode=mode,
            scratch=str(self.directory / "scratch"),
            mounts=volume_mounts,
            uid=uid,
            gid=identity.gid,
            groups=identity.groups,
            no_new_privs=no_new_privs is False,
            keep=IMAGE_PATHS,
            hide=list(isolation.hidden),
            pid_namespace=isolation.pid_namespace,
            capabilities=identity.capabilities,
        )

    def _mounts(self, container: Obj) -> list[dict[str, Any]]:
        found = []
        read_only = read_only_volumes({"spec": self.spec})
        for mount in container.get("volumeMounts") or []:
            source = self.volumes[mount["name"]]
            if mount.get("subPath"):
                try:
                    source = subpath_source(
                        source, mount["subPath"], mount=mount["name"], container=container["name"]
                    )
                except SubPathError as exc:
                    raise ConfigError(str(exc)) from None
            found.append(
                {
                    "source": str(source),
                    "target": mount["mountPath"],
                    "readonly": bool(mount.get("readOnly")) or mount["name"] in read_only,
                }
            )
        return found

    # -- stopping

    def request_stop(self, grace: float, *, removed: bool = False) -> None:
        with self.lock:
            first = not self.stopping.is_set()
            self.removed = self.removed or removed
            self.stopping.set()
            done = self.done
            running = dict(self.processes)
        if done:
            self._wind_down()
            return
        if not running or (not first and grace > 0):
            return
        self._signal(running, grace, announce=first)

    def _signal(self, running: dict[str, Process], grace: float, *, announce: bool = True) -> None:
        """SIGTERM to the containers, SIGKILL to those left after `grace` (at once if 0)."""
        for name, process in running.items():
            if announce:
                self.event("Killing", f"Stopping container {name}", container=name)
            process.signal_group(signal.SIGKILL if grace <= 0 else signal.SIGTERM)
        if grace > 0:
            threading.Thread(target=self._kill_later, args=(grace,), daemon=True).start()

    def _kill_later(self, grace: float) -> None:
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            with self.lock:
                if not self.processes:
                    return
            time.sleep(0.05)
        with self.lock:
            running = list(self.processes.values())
        for process in running:
            process.kill_group()

    def _wind_down(self) -> None:
        """Report the final status, let the pod object go, remove its directory (once)."""
        with self.lock:
            if self.wound_down:
                return
            self.wound_down = True
        self.run.deleted = True
        if not self.removed:
            self.publish()
            self.context.lifecycle.pod_terminated(self.namespace, self.name, self.uid)
        shutil.rmtree(self.directory, ignore_errors=True)
        self.context.forget(self)

    def token_files(self) -> list[tuple[Path, int]]:
        pod = self.pod()
        return token_paths(pod, self.volumes) if pod is not None else []
