"""Pod status as the kubelet reports it, computed from what the containers are doing.

A pure function of the pod spec, the containers' run states and the previous status (to
keep ``lastTransitionTime`` of conditions that did not change): phase, the conditions
PodReadyToStartContainers, Initialized, Ready, ContainersReady and PodScheduled, and the
init and regular container statuses with their waiting, running and terminated states.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from localcluster.apiserver.meta import timestamp

Obj = dict[str, Any]
HOST_IP = "127.0.0.1"


@dataclass
class ContainerRun:
    """What one container is doing; the kubelet updates it as the process runs."""

    name: str
    image: str
    init: bool = False
    waiting_reason: str = "ContainerCreating"
    waiting_message: str = ""
    started_at: float | None = None
    finished_at: float | None = None
    exit_code: int | None = None
    reason: str = ""
    message: str = ""
    restart_count: int = 0
    last_state: Obj = field(default_factory=dict)
    container_id: str = ""

    @property
    def running(self) -> bool:
        return self.started_at is not None and self.finished_at is None

    @property
    def terminated(self) -> bool:
        return self.finished_at is not None

    @property
    def succeeded(self) -> bool:
        return self.terminated and self.exit_code == 0

    def state(self) -> Obj:
        if self.terminated:
            terminated: Obj = {
                "exitCode": self.exit_code,
                "reason": self.reason,
                "startedAt": timestamp(self.started_at) if self.started_at else None,
                "finishedAt": timestamp(self.finished_at),
            }
            if self.message:
                terminated["message"] = self.message
            if self.container_id:
                terminated["containerID"] = self.container_id
            return {"terminated": terminated}
        if self.running:
            assert self.started_at is not None
            return {"running": {"startedAt": timestamp(self.started_at)}}
        waiting: Obj = {"reason": self.waiting_reason}
        if self.waiting_message:
            waiting["message"] = self.waiting_message
        return {"waiting": waiting}

    def status(self) -> Obj:
        ready = self.succeeded if self.init else self.running
        status: Obj = {
            "name": self.name,
            "state": self.state(),
            "lastState": self.last_state,
            "ready": ready,
            "restartCount": self.restart_count,
            "image": self.image,
            "imageID": "",
            "started": self.running,
        }
        if self.container_id:
            status["containerID"] = self.container_id
        return status


DEADLINE_MESSAGE = "Pod was active on the node longer than the specified deadline"


@dataclass
class PodRun:
    """What the kubelet knows about a pod besides its containers."""

    scheduled: bool = True
    unschedulable_message: str = ""
    sandbox_ready: bool = False
    start_time: float | None = None
    init_failed: bool = False
    deleted: bool = False
    deadline_exceeded: bool = False
    """Past the pod's own spec.activeDeadlineSeconds: Failed, whatever its containers do."""


def _phase(
    restart_policy: str, run: PodRun, inits: list[ContainerRun], mains: list[ContainerRun]
) -> str:
    if run.init_failed:
        return "Failed"
    begun = any(c.started_at or c.terminated for c in mains)
    if not all(c.succeeded for c in inits) or not begun:
        return "Failed" if run.deleted and any(c.started_at for c in inits) else "Pending"
    if any(c.running for c in mains):
        return "Running"
    if all(c.terminated for c in mains):
        if all(c.exit_code == 0 for c in mains):
            return "Succeeded"
        return "Running" if restart_policy == "OnFailure" and not run.deleted else "Failed"
    return "Running"


def _condition(
    kind: str, ok: bool, previous: dict[str, Obj], reason: str = "", message: str = ""
) -> Obj:
    status = "True" if ok else "False"
    before = previous.get(kind)
    since = (
        before["lastTransitionTime"] if before and before.get("status") == status else timestamp()
    )
    cond: Obj = {"type": kind, "status": status, "lastProbeTime": None, "lastTransitionTime": since}
    if not ok and reason:
        cond["reason"] = reason
    if not ok and message:
        cond["message"] = message
    return cond


def _conditions(
    phase: str, run: PodRun, inits: list[ContainerRun], mains: list[ContainerRun], previous: Obj
) -> list[Obj]:
    before = {c["type"]: c for c in previous.get("conditions") or []}
    if not run.scheduled:
        return [
            _condition("PodScheduled", False, before, "Unschedulable", run.unschedulable_message)
        ]
    incomplete = [c.name for c in inits if not c.succeeded]
    unready = [c.name for c in mains if not c.running]
    done = phase in ("Succeeded", "Failed")
    ready_reason = "PodCompleted" if done else "ContainersNotReady"
    ready_message = "" if done else f"containers with unready status: [{' '.join(unready)}]"
    init_message = f"containers with incomplete status: [{' '.join(incomplete)}]"
    return [
        _condition("PodReadyToStartContainers", run.sandbox_ready and not done, before),
        _condition(
            "Initialized",
            not incomplete,
            before,
            "PodCompleted" if done and incomplete else "ContainersNotInitialized",
            "" if done and incomplete else init_message,
        ),
        _condition("Ready", not unready, before, ready_reason, ready_message),
        _condition("ContainersReady", not unready, before, ready_reason, ready_message),
        _condition("PodScheduled", True, before),
    ]


def pod_status(pod: Obj, run: PodRun, containers: list[ContainerRun]) -> Obj:
    """The status the kubelet writes for ``pod`` now."""
    previous = pod.get("status") or {}
    inits = [c for c in containers if c.init]
    mains = [c for c in containers if not c.init]
    phase = (
        "Pending"
        if not run.scheduled
        else "Failed"
        if run.deadline_exceeded
        else _phase(pod["spec"].get("restartPolicy", "Never"), run, inits, mains)
    )
    status: Obj = {"phase": phase, "conditions": _conditions(phase, run, inits, mains, previous)}
    if run.deadline_exceeded:
        status["reason"] = "DeadlineExceeded"
        status["message"] = DEADLINE_MESSAGE
    if run.scheduled:
        status.update(
            hostIP=HOST_IP,
            hostIPs=[{"ip": HOST_IP}],
            podIP=HOST_IP,
            podIPs=[{"ip": HOST_IP}],
        )
        if run.start_time is not None:
            status["startTime"] = timestamp(run.start_time)
        if inits:
            status["initContainerStatuses"] = [c.status() for c in inits]
        status["containerStatuses"] = [c.status() for c in mains]
    if "qosClass" in previous:
        status["qosClass"] = previous["qosClass"]
    return status
