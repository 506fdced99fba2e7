"""Status of the jobs of the volume storage modes, from literal Job and pod objects: pods
with the processor alone, after check-input or not. Without a publish container the
output is in place when the processor ends."""

# One case per line reads as a table; wrapping it would not.
# ruff: noqa: E501

from __future__ import annotations

from typing import Any

import pytest

from pman.status import job_state

T0 = "2024-05-01T10:00:00Z"
T1 = "2024-05-01T10:05:00Z"
RUNNING = {"running": {"startedAt": T0}}
SUBPATH = 'failed to prepare subPath for volumeMount "storebase" of container "processor"'


def job(*conditions: dict[str, Any], completion: str | None = None) -> dict:
    status: dict[str, Any] = {"conditions": list(conditions)}
    if completion:
        status["completionTime"] = completion
    return {"metadata": {"name": "chris-jid-42"}, "spec": {"completions": 1}, "status": status}


def condition(kind: str, reason: str = "", at: str = T1) -> dict:
    return {"type": kind, "status": "True", "reason": reason, "lastTransitionTime": at}


def waiting(reason: str, message: str = "") -> dict:
    return {"waiting": {"reason": reason, "message": message}}


def terminated(code: int = 0, reason: str = "", at: str = T1) -> dict:
    return {
        "terminated": {
            "exitCode": code,
            "reason": reason or ("Completed" if code == 0 else "Error"),
            "finishedAt": at,
        }
    }


def pod(
    phase: str = "Pending",
    *,
    check: dict | None = None,
    processor: dict | None = None,
    checked: bool = True,
) -> dict:
    status: dict[str, Any] = {
        "phase": phase,
        "conditions": [{"type": "Ready", "lastTransitionTime": T0}],
    }
    if check is not None:
        status["initContainerStatuses"] = [{"name": "check-input", "state": check}]
    if processor is not None:
        status["containerStatuses"] = [{"name": "processor", "state": processor}]
    spec: dict[str, Any] = {"containers": [{"name": "processor", "image": "app:1"}]}
    if checked:
        spec["initContainers"] = [{"name": "check-input", "image": "publisher:1"}]
    return {
        "metadata": {
            "name": "chris-jid-42-abcde",
            "creationTimestamp": T0,
            "annotations": {"pman.chrisproject.org/input-dir": "key-chris-jid-42/incoming"},
        },
        "spec": spec,
        "status": status,
    }


CASES = [
    # name, job, pods, (status, phase, reason, message words)
    ("checking the input", job(), [pod(check=RUNNING)],
     ("started", "staging-in", "", "checking that the input directory exists")),
    ("input check image pull", job(), [pod(check=waiting("ImagePullBackOff"))],
     ("notstarted", "pending", "ImagePullBackOff", "publisher image publisher:1 to be pulled")),
    ("input missing", job(), [pod("Failed", check=terminated(1))],
     ("finishedWithError", "done", "InputMissing", "the input directory 'key-chris-jid-42/incoming' does not exist in the storeBase")),
    ("input missing, seen as the Job fails", job(condition("FailureTarget", "BackoffLimitExceeded"), condition("Failed", "BackoffLimitExceeded")), [pod("Failed", check=terminated(1))],
     ("finishedWithError", "done", "InputMissing", "does not exist in the storeBase")),
    ("input check cannot start", job(), [pod("Failed", check=terminated(128, "StartError"))],
     ("finishedWithError", "done", "InputCheckFailed", "exit code 128")),
    ("running after the check", job(), [pod("Running", check=terminated(), processor=RUNNING)],
     ("started", "running", "", "running")),
    ("fs job: no check, not started yet", job(), [pod(checked=False, processor=waiting("ContainerCreating"))],
     ("notstarted", "pending", "", "waiting for the pod to start")),
    ("fs job: processor image pull", job(), [pod(checked=False, processor=waiting("ErrImagePull", "not found"))],
     ("notstarted", "pending", "ErrImagePull", "processor image app:1 to be pulled")),
    ("fs job: running", job(), [pod("Running", checked=False, processor=RUNNING)],
     ("started", "running", "", "running")),
    ("processor done, pod phase lags", job(), [pod("Running", check=terminated(), processor=terminated())],
     ("finishedSuccessfully", "done", "", "finished")),
    ("processor failed, pod phase lags", job(), [pod("Running", check=terminated(), processor=terminated(2))],
     ("finishedWithError", "done", "ProcessorFailed", "exited with code 2")),
    ("complete", job(condition("SuccessCriteriaMet"), condition("Complete"), completion=T1), [pod("Succeeded", check=terminated(), processor=terminated())],
     ("finishedSuccessfully", "done", "", "finished")),
    ("subPath leading out of the storeBase", job(), [pod(check=terminated(), processor=waiting("CreateContainerConfigError", SUBPATH))],
     ("finishedWithError", "done", "CreateContainerConfigError", f"the processor cannot start (CreateContainerConfigError): {SUBPATH}")),
    ("fs job: subPath leading out of the storeBase", job(), [pod(checked=False, processor=waiting("CreateContainerConfigError", SUBPATH))],
     ("finishedWithError", "done", "CreateContainerConfigError", SUBPATH)),
]  # fmt: skip


@pytest.mark.parametrize(("name", "the_job", "pods", "expected"), CASES, ids=[c[0] for c in CASES])
def test_status(name, the_job, pods, expected):
    state = job_state(the_job, pods)
    status, phase, reason, words = expected
    assert (state.status, state.phase, state.reason) == (status, phase, reason), state
    assert words in state.message
    assert bool(state.timestamp) == state.finished


def test_a_processor_that_cannot_be_configured_fails_with_swift_storage_too():
    # An image that would run as root under runAsNonRoot: retried by the kubelet for ever.
    swift = {
        "metadata": {"name": "p", "creationTimestamp": T0},
        "spec": {
            "initContainers": [{"name": "stage-in", "image": "publisher:1"}],
            "containers": [
                {"name": "processor", "image": "app:1"},
                {"name": "publish", "image": "publisher:1"},
            ],
        },
        "status": {
            "phase": "Pending",
            "conditions": [{"type": "Ready", "lastTransitionTime": T0}],
            "initContainerStatuses": [{"name": "stage-in", "state": terminated()}],
            "containerStatuses": [
                {
                    "name": "processor",
                    "state": waiting(
                        "CreateContainerConfigError",
                        "container has runAsNonRoot and image will run as root",
                    ),
                },
                {"name": "publish", "state": RUNNING},
            ],
        },
    }
    state = job_state(job(), [swift])
    assert (state.status, state.reason) == ("finishedWithError", "CreateContainerConfigError")
    assert "image will run as root" in state.message
