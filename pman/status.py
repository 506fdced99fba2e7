"""Where a job is and why: a pure function of its Job and its pods (API JSON dicts).

The contract's five status values come with ``phase`` (pending, staging-in,
running, publishing, done) and ``reason`` (e.g. OOMKilled, DeadlineExceeded).
With Swift a job is ``finishedSuccessfully`` only when its publish container succeeded;
in the volume storage modes, whose pods have no publish container, when its processor
did. ``undefined`` is kept for a pod whose node stopped reporting: every state that is
only "not known yet" is ``notstarted`` with a sentence saying what it waits for. A
processor the kubelet cannot configure (``CreateContainerConfigError``: a subPath of the
storeBase that leads outside it, an image that would run as root) is a failure: the
kubelet would retry it until the job's deadline, days later.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pman.pod import CHECK_INPUT, INPUT_ANNOTATION, PROCESSOR, PUBLISH, STAGE_IN

Obj = dict[str, Any]

NOT_STARTED = "notstarted"
STARTED = "started"
SUCCEEDED = "finishedSuccessfully"
FAILED = "finishedWithError"
UNDEFINED = "undefined"

IMAGE_PULL_REASONS = {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"}
# Reasons a processor waits for ever: retried by the kubelet, never resolved by waiting.
CONFIG_FAILURES = {"CreateContainerConfigError"}
# What each init container does, as a job's message says it while it runs.
INIT_ACTIVITY = {
    STAGE_IN: "staging in the input data from Swift",
    CHECK_INPUT: "checking that the input directory exists in the storeBase",
}

# What the publisher's documented exit codes mean, in words a user understands.
PUBLISHER_EXIT_CODES = {
    2: "it was started with bad arguments",
    3: "no usable Swift credentials were found",
    4: "Swift refused the credentials",
    5: "Swift or its authentication service was unreachable",
    6: "the Swift container does not exist",
    7: "there is nothing under the given prefix",
    8: "a checksum did not match",
    9: "an object name would have landed outside the directory",
    10: "Swift kept failing",
    11: "the Kubernetes API failed",
    12: "the processor's end was never seen",
    13: "a local disk error occurred",
    14: "the job's input was refused",
    15: "Swift refused the job's temporary URLs (expired, or the key changed)",
}
INPUT_MISSING_CODES = {6, 7}
# The stage-in plan refused the input (pfcon jobs): its reason is the stage-in's last line.
INPUT_REFUSED_CODE = 14


@dataclass(frozen=True)
class JobState:
    """The status fields of a job object."""

    status: str
    phase: str
    message: str
    reason: str = ""
    timestamp: str = ""

    @property
    def finished(self) -> bool:
        return self.status in (SUCCEEDED, FAILED)


def job_state(job: Obj, pods: list[Obj]) -> JobState:
    """The state of ``job`` given the pods that carry its label."""
    pod = representative_pod(pods)
    if complete := _condition(job, "Complete") or _condition(job, "SuccessCriteriaMet"):
        stamp = _get(job, "status", "completionTime") or complete.get("lastTransitionTime")
        return JobState(SUCCEEDED, "done", "finished", timestamp=iso(stamp))
    if failed := _condition(job, "Failed") or _condition(job, "FailureTarget"):
        reason, message = _job_failure(job, failed, pod)
        stamp = failed.get("lastTransitionTime")
        return JobState(FAILED, "done", message, reason, iso(stamp))
    if pod is None:
        return JobState(NOT_STARTED, "pending", "waiting for the job's pod to be created")
    return _across_workers(pod_state(pod), job, pods)


def pods_behind(job: Obj, pods: list[Obj]) -> bool:
    """Whether ``job`` has ended but none of ``pods`` shows how: pods seen through a watch
    that lags behind the Jobs' (two streams, in no order between them), so that the reason
    and the logs would be missing. A Job stopped by its deadline needs no pod to tell why."""
    ended = (
        _condition(job, "Complete")
        or _condition(job, "SuccessCriteriaMet")
        or _condition(job, "Failed")
        or _condition(job, "FailureTarget")
    )
    if ended is None or ended.get("reason") == "DeadlineExceeded":
        return False
    return not any(_phase(pod) in ("Failed", "Succeeded") for pod in pods)


def _across_workers(state: JobState, job: Obj, pods: list[Obj]) -> JobState:
    """With several workers, one pod's view must not hide the others'."""
    completions = _get(job, "spec", "completions") or 1
    done = sum(pod_state(pod).status == SUCCEEDED for pod in pods)
    if state.status == SUCCEEDED and done < completions:
        return JobState(STARTED, "running", f"{done} of {completions} workers finished")
    if state.status == NOT_STARTED and any(_phase(p) in ("Running", "Succeeded") for p in pods):
        return JobState(STARTED, "running", "running")
    return state


def representative_pod(pods: list[Obj]) -> Obj | None:
    """The pod that tells most: a failed one, else the furthest along, newest first."""
    rank = {"Failed": 0, "Unknown": 1, "Running": 2, "Pending": 3, "Succeeded": 4}

    live = [pod for pod in pods if not _get(pod, "metadata", "deletionTimestamp")] or pods
    newest_first = sorted(live, key=lambda pod: _created(pod), reverse=True)
    return min(newest_first, key=lambda pod: rank.get(_phase(pod), 5), default=None)


def _created(pod: Obj) -> str:
    return _get(pod, "metadata", "creationTimestamp") or ""


def _phase(pod: Obj) -> str:
    return _get(pod, "status", "phase") or ""


def pod_state(pod: Obj) -> JobState:
    """The state of an unfinished job from its pod's container statuses."""
    phase = _phase(pod)
    if phase == "Unknown":
        return JobState(
            UNDEFINED, "pending", "the node running the job stopped reporting", "NodeLost"
        )
    if phase == "Failed":
        reason, message = pod_failure(pod)
        return JobState(FAILED, "done", message, reason, iso(_finished_at(pod)))
    if phase == "Succeeded":
        return JobState(SUCCEEDED, "done", "finished", timestamp=iso(_finished_at(pod)))
    init = _init_container(pod)
    if init is None:
        return _before_processor(pod)
    status = container_status(pod, init, init=True)
    if status is None or "terminated" not in status.get("state", {}):
        return _init_state(pod, init, status)
    if _exit_code(status):
        reason, message = pod_failure(pod)
        return JobState(FAILED, "done", message, reason, iso(_finished_at(pod)))
    return _processing_state(pod)


def _init_container(pod: Obj) -> str | None:
    """The init container of the pod's storage mode: stage-in, check-input, or none."""
    names = {c.get("name") for c in _get(pod, "spec", "initContainers") or []}
    return next((name for name in (STAGE_IN, CHECK_INPUT) if name in names), None)


def _init_state(pod: Obj, name: str, status: Obj | None) -> JobState:
    state = (status or {}).get("state", {})
    if "running" in state:
        return JobState(STARTED, "staging-in", INIT_ACTIVITY[name])
    if waiting := _waiting(state, "the publisher image", _image(pod, name, init=True)):
        return JobState(NOT_STARTED, "pending", *waiting)
    return _unstarted(pod)


def _before_processor(pod: Obj) -> JobState:
    """A pod without init containers: nothing has run before the processor starts."""
    state = (container_status(pod, PROCESSOR) or {}).get("state", {})
    if "running" in state or "terminated" in state:
        return _processing_state(pod)
    if failed := _config_failure(pod, state):
        return failed
    if waiting := _waiting(state, "the processor image", _image(pod, PROCESSOR)):
        return JobState(NOT_STARTED, "pending", *waiting)
    return _unstarted(pod)


def _config_failure(pod: Obj, state: Obj) -> JobState | None:
    """The processor waiting on a configuration the kubelet will never manage to make."""
    waiting = state.get("waiting") or {}
    reason = waiting.get("reason") or ""
    if reason not in CONFIG_FAILURES:
        return None
    detail = waiting.get("message") or ""
    message = f"the processor cannot start ({reason})" + (f": {detail}" if detail else "")
    return JobState(FAILED, "done", message, reason, iso(_finished_at(pod)))


def _unstarted(pod: Obj) -> JobState:
    unscheduled = _pod_condition(pod, "PodScheduled")
    if unscheduled and unscheduled.get("status") == "False":
        detail = unscheduled.get("message") or unscheduled.get("reason") or "no node fits"
        reason = unscheduled.get("reason") or "Unschedulable"
        return JobState(NOT_STARTED, "pending", f"waiting to be scheduled: {detail}", reason)
    return JobState(NOT_STARTED, "pending", "waiting for the pod to start")


def _processing_state(pod: Obj) -> JobState:
    processor = container_status(pod, PROCESSOR) or {}
    state = processor.get("state", {})
    if failed := _config_failure(pod, state):
        return failed
    if waiting := _waiting(state, "the processor image", _image(pod, PROCESSOR)):
        return JobState(STARTED, "running", *waiting)
    if "terminated" not in state:
        message = "running" if "running" in state else "starting the processor"
        return JobState(STARTED, "running", message)
    if not _has_container(pod, PUBLISH):
        # The volume storage modes: the output is in place as soon as the processor ends.
        reason, message = pod_failure(pod)
        if reason:
            return JobState(FAILED, "done", message, reason, iso(_finished_at(pod)))
        return JobState(SUCCEEDED, "done", "finished", timestamp=iso(_finished_at(pod)))
    publish = (container_status(pod, PUBLISH) or {}).get("state", {})
    outcome = _processor_outcome(state["terminated"], pod)
    if waiting := _waiting(publish, "the publisher image", _image(pod, PUBLISH)):
        return JobState(STARTED, "publishing", f"{outcome}; {waiting[0]}", waiting[1])
    if "terminated" in publish:
        # Both containers ended but the pod phase lags: report what they say.
        reason, message = pod_failure(pod)
        if reason:
            return JobState(FAILED, "done", message, reason, iso(_finished_at(pod)))
        return JobState(SUCCEEDED, "done", "finished", timestamp=iso(_finished_at(pod)))
    return JobState(STARTED, "publishing", f"{outcome}; publishing the output to Swift")


def _waiting(state: Obj, what: str, image: str) -> tuple[str, str] | None:
    """Message and reason for a container that cannot start yet, or None."""
    waiting = state.get("waiting")
    if not waiting:
        return None
    reason = waiting.get("reason") or ""
    detail = waiting.get("message") or ""
    if reason in IMAGE_PULL_REASONS:
        message = f"waiting for {what} {image} to be pulled ({reason})"
    elif reason in ("ContainerCreating", "PodInitializing", ""):
        return None
    else:
        message = f"cannot start {what.removeprefix('the ')} ({reason})"
    return (f"{message}: {detail}" if detail else message), reason


def _processor_outcome(terminated: Obj, pod: Obj) -> str:
    if terminated.get("reason") == "OOMKilled":
        return f"the processor ran out of memory and was killed (OOMKilled{_limit_text(pod)})"
    code = terminated.get("exitCode", 0)
    return "the processor finished" if code == 0 else f"the processor exited with code {code}"


def pod_failure(pod: Obj) -> tuple[str, str]:
    """``(reason, message)`` naming the part of the pod that failed, or ``("", "")``."""
    stage_in = container_status(pod, STAGE_IN, init=True) or {}
    if (code := _exit_code(stage_in)) == INPUT_REFUSED_CODE:
        return "InputRefused", _refusal(stage_in)
    if code:
        reason = "InputMissing" if code in INPUT_MISSING_CODES else "StageInFailed"
        return reason, "staging in the input from Swift failed" + _exit_detail(code, stage_in)
    check = container_status(pod, CHECK_INPUT, init=True) or {}
    if code := _exit_code(check):
        return _check_failure(pod, code, check)
    processor = (container_status(pod, PROCESSOR) or {}).get("state", {}).get("terminated")
    if processor and (processor.get("reason") == "OOMKilled" or processor.get("exitCode")):
        reason = "OOMKilled" if processor.get("reason") == "OOMKilled" else "ProcessorFailed"
        return reason, _processor_outcome(processor, pod)
    publish = container_status(pod, PUBLISH) or {}
    if code := _exit_code(publish):
        return "PublishFailed", "publishing the output to Swift failed" + _exit_detail(
            code, publish
        )
    pod_reason = _get(pod, "status", "reason")
    if pod_reason:
        detail = _get(pod, "status", "message") or pod_reason
        return pod_reason, f"the pod failed: {detail}"
    if _get(pod, "status", "phase") == "Failed":
        return "Failed", "the pod failed"
    return "", ""


def _check_failure(pod: Obj, code: int, status: Obj) -> tuple[str, str]:
    """check-input ran ``test -d``: 1 means the directory is not there."""
    input_dir = (_get(pod, "metadata", "annotations") or {}).get(INPUT_ANNOTATION, "")
    if code == 1:
        return "InputMissing", (
            f"the input directory {input_dir!r} does not exist in the storeBase (or is not a "
            "directory)"
        )
    message = (status.get("state", {}).get("terminated", {}).get("message") or "").strip()
    detail = f": {message.splitlines()[-1]}" if message else ""
    return "InputCheckFailed", (
        f"checking the input directory {input_dir!r} failed (exit code {code}){detail}"
    )


def _has_container(pod: Obj, name: str) -> bool:
    return any(c.get("name") == name for c in _get(pod, "spec", "containers") or [])


def _job_failure(job: Obj, condition: Obj, pod: Obj | None) -> tuple[str, str]:
    if condition.get("reason") == "DeadlineExceeded":
        seconds = _get(job, "spec", "activeDeadlineSeconds")
        limit = f" of {seconds} seconds" if seconds else ""
        return "DeadlineExceeded", f"the job ran longer than its deadline{limit} and was stopped"
    reason, message = pod_failure(pod) if pod else ("", "")
    if reason:
        return reason, message
    reason = condition.get("reason") or "Failed"
    return reason, condition.get("message") or "the job failed"


def _exit_detail(code: int, status: Obj) -> str:
    """`` (exit code N: meaning): last line of its output``."""
    meaning = PUBLISHER_EXIT_CODES.get(code)
    detail = f" (exit code {code}: {meaning})" if meaning else f" (exit code {code})"
    message = (status.get("state", {}).get("terminated", {}).get("message") or "").strip()
    return f"{detail}: {message.splitlines()[-1]}" if message else detail


def _refusal(status: Obj) -> str:
    """``the job's input was refused: <why>``, why being the stage-in's last line."""
    message = (status.get("state", {}).get("terminated", {}).get("message") or "").strip()
    why = message.splitlines()[-1].removeprefix("publisher: ") if message else ""
    return f"the job's input was refused: {why}" if why else "the job's input was refused"


def _limit_text(pod: Obj) -> str:
    for container in _get(pod, "spec", "containers") or []:
        if container.get("name") == PROCESSOR:
            memory = _get(container, "resources", "limits", "memory")
            if memory:
                return f"; its limit is {memory}"
    return ""


def processor_started(pod: Obj | None) -> bool:
    """Whether the processor container has run, so that it has logs."""
    if pod is None:
        return False
    state = (container_status(pod, PROCESSOR) or {}).get("state", {})
    return "running" in state or "terminated" in state


def processor_finished(pod: Obj | None) -> bool:
    """Whether the processor's logs can no longer change."""
    if pod is None:
        return False
    return "terminated" in (container_status(pod, PROCESSOR) or {}).get("state", {})


def logs_placeholder(state: JobState) -> str:
    """What GET returns as ``logs`` while the processor has none."""
    if state.finished:
        return f"The processor did not run: {state.message}."
    return f"The processor has not started yet: {state.message}."


def container_status(pod: Obj, name: str, *, init: bool = False) -> Obj | None:
    """The status of container ``name`` in ``pod``, if the kubelet has reported it."""
    key = "initContainerStatuses" if init else "containerStatuses"
    for status in _get(pod, "status", key) or []:
        if status.get("name") == name:
            return status
    return None


def _image(pod: Obj, name: str, *, init: bool = False) -> str:
    for container in _get(pod, "spec", "initContainers" if init else "containers") or []:
        if container.get("name") == name:
            return container.get("image", "")
    return ""


def _exit_code(status: Obj) -> int:
    return status.get("state", {}).get("terminated", {}).get("exitCode", 0) or 0


def _finished_at(pod: Obj) -> str | None:
    """When the pod last changed: its latest container end or condition change."""
    stamps = [
        status["state"]["terminated"].get("finishedAt")
        for key in ("initContainerStatuses", "containerStatuses")
        for status in _get(pod, "status", key) or []
        if "terminated" in status.get("state", {})
    ]
    stamps += [c.get("lastTransitionTime") for c in _get(pod, "status", "conditions") or []]
    return max(filter(None, stamps), default=None)


def _condition(job: Obj, kind: str) -> Obj | None:
    # Conditions come in pairs in recent Kubernetes: look them up by type, never by position.
    for condition in _get(job, "status", "conditions") or []:
        if condition.get("type") == kind and condition.get("status") == "True":
            return condition
    return None


def _pod_condition(pod: Obj, kind: str) -> Obj | None:
    for condition in _get(pod, "status", "conditions") or []:
        if condition.get("type") == kind:
            return condition
    return None


def iso(stamp: str | None) -> str:
    """Kubernetes' ``...Z`` time as the ISO-8601 form upstream pman reported."""
    if not stamp:
        return ""
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).isoformat()
    except ValueError:
        return stamp


def _get(obj: Obj | None, *keys: str) -> Any:
    for key in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj
