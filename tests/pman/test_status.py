"""Status, phase, reason and message of a job, from literal Job and pod objects."""

# One case per line reads as a table; wrapping it would not.
# ruff: noqa: E501

from __future__ import annotations

from typing import Any

import pytest

from pman.status import (
    JobState,
    job_state,
    logs_placeholder,
    pods_behind,
    processor_finished,
    processor_started,
)

T0 = "2024-05-01T10:00:00Z"
T1 = "2024-05-01T10:05:00Z"


def job(*conditions: dict[str, Any], completion: str | None = None, completions: int = 1) -> dict:
    status: dict[str, Any] = {"conditions": list(conditions)}
    if completion:
        status["completionTime"] = completion
    return {
        "metadata": {"name": "chris-jid-42"},
        "spec": {"completions": completions, "activeDeadlineSeconds": 3600},
        "status": status,
    }


def condition(kind: str, reason: str = "", message: str = "", at: str = T1) -> dict:
    return {
        "type": kind,
        "status": "True",
        "reason": reason,
        "message": message,
        "lastTransitionTime": at,
    }


def waiting(reason: str, message: str = "") -> dict:
    return {"waiting": {"reason": reason, "message": message}}


RUNNING = {"running": {"startedAt": T0}}


def terminated(code: int = 0, reason: str = "", message: str = "", at: str = T1) -> dict:
    state = {
        "exitCode": code,
        "reason": reason or ("Completed" if code == 0 else "Error"),
        "finishedAt": at,
    }
    if message:
        state["message"] = message
    return {"terminated": state}


def pod(
    phase: str = "Pending",
    *,
    stage_in: dict | None = None,
    processor: dict | None = None,
    publish: dict | None = None,
    conditions: list | None = None,
    reason: str = "",
    created: str = T0,
) -> dict:
    status: dict[str, Any] = {"phase": phase, "conditions": conditions or []}
    if stage_in is not None:
        status["initContainerStatuses"] = [{"name": "stage-in", "state": stage_in}]
    statuses = [
        {"name": name, "state": state}
        for name, state in (("processor", processor), ("publish", publish))
        if state is not None
    ]
    if statuses:
        status["containerStatuses"] = statuses
    if reason:
        status["reason"] = reason
        status["message"] = f"pod {reason.lower()}"
    return {
        "metadata": {"name": "chris-jid-42-abcde", "creationTimestamp": created},
        "spec": {
            "initContainers": [{"name": "stage-in", "image": "publisher:1"}],
            "containers": [
                {
                    "name": "processor",
                    "image": "app:1",
                    "resources": {"limits": {"memory": "200Mi"}},
                },
                {"name": "publish", "image": "publisher:1"},
            ],
        },
        "status": status,
    }


UNSCHEDULABLE = {
    "type": "PodScheduled",
    "status": "False",
    "reason": "Unschedulable",
    "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu.",
}

CASES = [
    # name, job, pods, (status, phase, reason, message words, timestamp)
    ("just created", job(), [], ("notstarted", "pending", "", "pod to be created", "")),
    ("pod not scheduled", job(), [pod(conditions=[UNSCHEDULABLE])],
     ("notstarted", "pending", "Unschedulable", "Insufficient nvidia.com/gpu", "")),
    ("pod starting", job(), [pod(stage_in=waiting("PodInitializing"))],
     ("notstarted", "pending", "", "waiting for the pod to start", "")),
    ("publisher image pull", job(), [pod(stage_in=waiting("ImagePullBackOff", "Back-off pulling"))],
     ("notstarted", "pending", "ImagePullBackOff", "publisher image publisher:1 to be pulled", "")),
    ("missing secret", job(), [pod(stage_in=waiting("CreateContainerConfigError", 'secret "swift-credentials" not found'))],
     ("notstarted", "pending", "CreateContainerConfigError", 'secret "swift-credentials" not found', "")),
    ("staging in", job(), [pod(stage_in=RUNNING)],
     ("started", "staging-in", "", "staging in", "")),
    ("processor image pull", job(), [pod("Pending", stage_in=terminated(), processor=waiting("ErrImagePull", "not found"), publish=RUNNING)],
     ("started", "running", "ErrImagePull", "processor image app:1 to be pulled", "")),
    ("running", job(), [pod("Running", stage_in=terminated(), processor=RUNNING, publish=RUNNING)],
     ("started", "running", "", "running", "")),
    ("publishing", job(), [pod("Running", stage_in=terminated(), processor=terminated(), publish=RUNNING)],
     ("started", "publishing", "", "publishing the output", "")),
    ("publishing after failure", job(), [pod("Running", stage_in=terminated(), processor=terminated(3), publish=RUNNING)],
     ("started", "publishing", "", "exited with code 3; publishing", "")),
    ("complete", job(condition("SuccessCriteriaMet"), condition("Complete"), completion=T1),
     [pod("Succeeded", stage_in=terminated(), processor=terminated(), publish=terminated())],
     ("finishedSuccessfully", "done", "", "finished", "2024-05-01T10:05:00+00:00")),
    ("succeeded before the job says so", job(),
     [pod("Succeeded", stage_in=terminated(), processor=terminated(), publish=terminated(at=T1))],
     ("finishedSuccessfully", "done", "", "finished", "2024-05-01T10:05:00+00:00")),
    ("all containers ended, pod phase lags", job(),
     [pod("Running", stage_in=terminated(), processor=terminated(), publish=terminated())],
     ("finishedSuccessfully", "done", "", "finished", "2024-05-01T10:05:00+00:00")),
    ("processor failed", job(condition("FailureTarget", "BackoffLimitExceeded"), condition("Failed", "BackoffLimitExceeded")),
     [pod("Failed", stage_in=terminated(), processor=terminated(2), publish=terminated())],
     ("finishedWithError", "done", "ProcessorFailed", "the processor exited with code 2", "2024-05-01T10:05:00+00:00")),
    ("out of memory", job(condition("Failed", "BackoffLimitExceeded")),
     [pod("Failed", stage_in=terminated(), processor=terminated(137, "OOMKilled"), publish=terminated())],
     ("finishedWithError", "done", "OOMKilled", "ran out of memory and was killed (OOMKilled; its limit is 200Mi)", "2024-05-01T10:05:00+00:00")),
    ("stage-in failed", job(),
     [pod("Failed", stage_in=terminated(3, message="Traceback\nInputMissing: no objects under key-x/incoming"))],
     ("finishedWithError", "done", "StageInFailed", "(exit code 3: no usable Swift credentials were found): InputMissing: no objects under key-x/incoming", T1.replace("Z", "+00:00"))),
    ("input refused", job(), [pod("Failed", stage_in=terminated(14, message="publisher: the ChRIS link 'in/x.chrislink' points to 'home/a', which is this job's output folder or a folder above it"))],
     ("finishedWithError", "done", "InputRefused", "the job's input was refused: the ChRIS link 'in/x.chrislink' points to 'home/a', which", T1.replace("Z", "+00:00"))),
    ("input missing", job(), [pod("Failed", stage_in=terminated(7))],
     ("finishedWithError", "done", "InputMissing", "failed (exit code 7: there is nothing under the given prefix)", T1.replace("Z", "+00:00"))),
    ("stage-in failed, pod phase lags", job(), [pod("Pending", stage_in=terminated(1))],
     ("finishedWithError", "done", "StageInFailed", "staging in the input from Swift failed", T1.replace("Z", "+00:00"))),
    ("publish failed", job(condition("Failed", "BackoffLimitExceeded")),
     [pod("Failed", stage_in=terminated(), processor=terminated(), publish=terminated(4, message="403 Forbidden"))],
     ("finishedWithError", "done", "PublishFailed", "publishing the output to Swift failed (exit code 4: Swift refused the credentials): 403 Forbidden", T1.replace("Z", "+00:00"))),
    ("stage-in's temporary URLs refused", job(),
     [pod("Failed", stage_in=terminated(15, message="publisher: Swift refused the temporary URL (401): it has expired"))],
     ("finishedWithError", "done", "StageInFailed", "(exit code 15: Swift refused the job's temporary URLs (expired, or the key changed)): publisher: Swift refused", T1.replace("Z", "+00:00"))),
    ("publish's temporary URLs refused", job(condition("Failed", "BackoffLimitExceeded")),
     [pod("Failed", stage_in=terminated(), processor=terminated(), publish=terminated(15, message="publisher: Swift refused the temporary URL (401)"))],
     ("finishedWithError", "done", "PublishFailed", "publishing the output to Swift failed (exit code 15: Swift refused the job's temporary URLs (expired, or the key changed)): publisher:", T1.replace("Z", "+00:00"))),
    ("deadline", job(condition("Failed", "DeadlineExceeded", "Job was active longer than specified deadline")), [],
     ("finishedWithError", "done", "DeadlineExceeded", "longer than its deadline of 3600 seconds", T1.replace("Z", "+00:00"))),
    ("evicted", job(), [pod("Failed", stage_in=terminated(), processor=RUNNING, reason="Evicted")],
     ("finishedWithError", "done", "Evicted", "the pod failed: pod evicted", T1.replace("Z", "+00:00"))),
    ("node lost", job(), [pod("Unknown", stage_in=terminated(), processor=RUNNING)],
     ("undefined", "pending", "NodeLost", "stopped reporting", "")),
    ("one of two workers done", job(completions=2),
     [pod("Succeeded", stage_in=terminated(), processor=terminated(), publish=terminated()),
      pod("Succeeded", stage_in=terminated(), processor=terminated(), publish=terminated())][:1],
     ("started", "running", "", "1 of 2 workers finished", "")),
    ("worker pending beside a running one", job(completions=2),
     [pod("Pending", stage_in=waiting("PodInitializing")), pod("Running", stage_in=terminated(), processor=RUNNING, publish=RUNNING)],
     ("started", "running", "", "running", "")),
]  # fmt: skip


@pytest.mark.parametrize(
    ("job_obj", "pods", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_state(job_obj, pods, expected):
    status, phase, reason, words, timestamp = expected
    state = job_state(job_obj, pods)
    assert (state.status, state.phase, state.reason, state.timestamp) == (
        status,
        phase,
        reason,
        timestamp,
    )
    assert words in state.message


def test_a_failed_pod_is_reported_over_a_running_one():
    failed = pod(
        "Failed", stage_in=terminated(), processor=terminated(1), publish=terminated(), created=T0
    )
    running = pod("Running", stage_in=terminated(), processor=RUNNING, publish=RUNNING, created=T1)
    assert job_state(job(completions=2), [running, failed]).status == "finishedWithError"


def test_logs_are_read_once_the_processor_has_run():
    assert not processor_started(None)
    assert not processor_started(pod(stage_in=RUNNING))
    assert processor_started(pod("Running", stage_in=terminated(), processor=RUNNING))
    assert not processor_finished(pod("Running", stage_in=terminated(), processor=RUNNING))
    assert processor_finished(pod("Running", stage_in=terminated(), processor=terminated()))


def test_logs_placeholder_is_a_sentence_not_an_error():
    waiting_state = JobState(
        "notstarted", "pending", "waiting for the processor image app:1 to be pulled"
    )
    assert logs_placeholder(waiting_state) == (
        "The processor has not started yet: waiting for the processor image app:1 to be pulled."
    )
    failed = JobState(
        "finishedWithError", "done", "staging in the input from Swift failed", "StageInFailed"
    )
    assert logs_placeholder(failed).startswith("The processor did not run: staging in")


@pytest.mark.parametrize(
    ("job_obj", "pods", "behind"),
    [
        # Ended, but the pods seen have not ended (or are not seen at all): a lagging watch.
        (job(condition("Failed", "BackoffLimitExceeded")), [], True),
        (
            job(condition("Failed", "BackoffLimitExceeded")),
            [pod("Pending", stage_in=RUNNING)],
            True,
        ),
        (
            job(condition("Complete"), completion=T1),
            [pod("Running", stage_in=terminated(), processor=RUNNING)],
            True,
        ),
        (
            job(condition("FailureTarget", "BackoffLimitExceeded")),
            [pod("Running", stage_in=RUNNING)],
            True,
        ),
        # The pods say how it ended.
        (
            job(condition("Failed", "BackoffLimitExceeded")),
            [pod("Failed", stage_in=terminated(3))],
            False,
        ),
        (
            job(condition("Complete"), completion=T1),
            [pod("Succeeded", stage_in=terminated(), processor=terminated())],
            False,
        ),
        # A deadline needs no pod to explain it (the Job's controller deletes the running ones).
        (
            job(condition("Failed", "DeadlineExceeded")),
            [pod("Running", stage_in=terminated(), processor=RUNNING)],
            False,
        ),
        # Not ended: nothing to catch up with.
        (job(), [], False),
        (job(), [pod("Running", stage_in=terminated(), processor=RUNNING)], False),
    ],
)
def test_pods_are_behind_when_the_job_has_ended_and_no_pod_shows_how(job_obj, pods, behind):
    assert pods_behind(job_obj, pods) is behind
