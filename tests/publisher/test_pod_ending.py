"""The publish sidecar when Kubernetes ends its pod: SIGTERM to every container at once.

A Job past its activeDeadlineSeconds has its pod deleted; the kubelet signals the
processor and the sidecar together and kills what is left after the pod's grace period.
The sidecar publishes what the processor left if it can do so within that period.
"""

from __future__ import annotations

import contextlib
import json
import signal
import time

import kubernetes
import pytest

from publisher.errors import GraceExpired, Interrupted
from publisher.manifest import MANIFEST_NAME
from publisher.publish import GracefulStop
from tests.support.names import unique_name
from tests.support.podspec import job_pod_manifest
from tests.support.publisher import (
    FILES,
    object_names,
    start_publish,
    wait_for_objects,
    wait_until_preparing,
)
from tests.support.waiting import eventually


def wait_for_log(core, namespace: str, job: str, line: str, container: str = "processor"):
    """Once the Job's container has printed `line`."""

    def printed() -> bool:
        pod = core.list_namespaced_pod(namespace, label_selector=f"job-name={job}").items[0]
        with contextlib.suppress(kubernetes.client.exceptions.ApiException):  # not started
            log = core.read_namespaced_pod_log(pod.metadata.name, namespace, container=container)
            return line in log.splitlines()
        return False

    eventually(printed, timeout=30, what=f"{container} of {job} printing {line!r}")


def end_by_deadline(batch, core, namespace: str, job: str, *, level: str) -> None:
    """Give the running Job (or its pod) a deadline that has already passed."""
    if level == "job":
        batch.patch_namespaced_job(job, namespace, {"spec": {"activeDeadlineSeconds": 1}})
        return
    pod = core.list_namespaced_pod(namespace, label_selector=f"job-name={job}").items[0]
    core.patch_namespaced_pod(pod.metadata.name, namespace, {"spec": {"activeDeadlineSeconds": 1}})


def last_statuses(core, namespace: str, job: str, timeout: int = 60) -> dict:
    """Watch the Job's pod until it is gone or all its containers have ended; their states."""
    pods = core.list_namespaced_pod(namespace, label_selector=f"job-name={job}")
    states: dict = {}
    stream = kubernetes.watch.Watch().stream(
        core.list_namespaced_pod,
        namespace,
        label_selector=f"job-name={job}",
        resource_version=pods.metadata.resource_version,
        timeout_seconds=timeout,
    )
    for event in stream:
        pod = event["object"]
        statuses = pod.status.container_statuses or []
        for status in statuses:
            if status.state and status.state.terminated:
                states[status.name] = status.state.terminated
        if event["type"] == "DELETED" or (statuses and len(states) == len(statuses)):
            states["pod"] = pod
            return states
    raise AssertionError(f"the containers of {job} did not end")


def run_past_deadline(
    jobs, batch, core, namespace, script, *, grace, level, secret, swift_server, container
) -> tuple[str, dict]:
    """Run a publishing Job until its processor says "ready", end it by a deadline (of
    the Job or of the pod), and follow it until its containers have ended."""
    manifest = job_pod_manifest(
        unique_name("deadline"),
        secret=secret,
        container=container,
        processor_script=script,
        stage_in=False,
    )
    spec = manifest["spec"]["template"]["spec"]
    spec["terminationGracePeriodSeconds"] = grace
    for c in spec["containers"]:
        c["terminationMessagePolicy"] = "FallbackToLogsOnError"
    name = jobs(manifest)
    wait_until_preparing(swift_server, container)
    wait_for_log(core, namespace, name, "ready")
    end_by_deadline(batch, core, namespace, name, level=level)
    return name, last_statuses(core, namespace, name)


@pytest.mark.parametrize(
    ("level", "why"), [("job", "deleted"), ("pod", "DeadlineExceeded")], ids=["job", "pod"]
)
def test_a_job_past_its_deadline_still_publishes_what_its_processor_left(
    level, why, jobs, batch, core, kube_cluster, credentials_secret, swift_server, swift_container
):
    """The Job's deadline deletes the pod; the pod's own deadline fails it (it stays)."""
    script = (
        "mkdir -p /share/outgoing && echo partial > /share/outgoing/partial.txt && "
        "echo ready && sleep 300"
    )
    name, states = run_past_deadline(
        jobs,
        batch,
        core,
        kube_cluster.namespace,
        script,
        grace=20,
        level=level,
        secret=credentials_secret,
        swift_server=swift_server,
        container=swift_container,
    )

    assert states["processor"].exit_code == 143  # ended by the SIGTERM
    assert states["publish"].exit_code == 0, states["publish"].message
    assert sorted(object_names(swift_server, swift_container)) == [
        f"out/{MANIFEST_NAME}",
        "out/partial.txt",
    ]
    conn = swift_server.connection()
    assert conn.get_object(swift_container, "out/partial.txt")[1] == b"partial\n"
    processor = json.loads(conn.get_object(swift_container, f"out/{MANIFEST_NAME}")[1])["processor"]
    assert processor["exit_code"] == 143
    assert processor["pod_ending"] == {"why": why, "grace_period_seconds": 20}
    if level == "pod":
        pod = states["pod"]
        assert (pod.status.phase, pod.status.reason) == ("Failed", "DeadlineExceeded")
        log = core.read_namespaced_pod_log(
            pod.metadata.name, kube_cluster.namespace, container="publish"
        )
        summary = json.loads(log.strip().splitlines()[-1])
        assert summary["status"] == "ok"
        assert summary["pod_ending"]["why"] == "DeadlineExceeded"
    else:
        job = batch.read_namespaced_job(name, kube_cluster.namespace)
        assert job.status.conditions[-1].reason == "DeadlineExceeded"


def test_a_processor_outliving_the_grace_period_publishes_nothing_and_says_so(
    jobs, batch, core, kube_cluster, credentials_secret, swift_server, swift_container
):
    # Ignores SIGTERM (and so does its sleep): only the SIGKILL at the end of the grace ends it.
    script = (
        "trap '' TERM; mkdir -p /share/outgoing && echo x > /share/outgoing/x && "
        "echo ready && while true; do sleep 0.2; done"
    )
    _, states = run_past_deadline(
        jobs,
        batch,
        core,
        kube_cluster.namespace,
        script,
        grace=5,
        level="job",
        secret=credentials_secret,
        swift_server=swift_server,
        container=swift_container,
    )

    assert states["processor"].exit_code == 137  # SIGKILL
    publish = states["publish"]
    assert publish.exit_code == 143  # it ended itself, before the SIGKILL
    assert publish.finished_at < states["processor"].finished_at
    assert "grace period (5 s) ran out before container processor ended" in publish.message
    assert object_names(swift_server, swift_container) == []


def test_sigterm_while_publishing_finishes_the_publish(
    ended_processor, many_files, kube_cluster, swift_server, swift_container
):
    pod = ended_processor(grace=30)
    process = start_publish(pod, kube_cluster, swift_server, many_files, swift_container)
    wait_for_objects(swift_server, swift_container, 20, process)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "finishing within the pod's grace period (30 s)" in err
    summary = json.loads(out)
    assert summary["status"] == "ok"
    assert summary["files"] == FILES
    names = object_names(swift_server, swift_container)
    assert len(names) == FILES + 1
    assert f"out/{MANIFEST_NAME}" in names


def test_grace_period_running_out_while_publishing_leaves_no_manifest(
    ended_processor, many_files, kube_cluster, swift_server, swift_container
):
    pod = ended_processor(grace=6)
    # One file at a time, and Swift paused as soon as the publish is under way, so that it
    # cannot have finished by then even on a busy machine.
    process = start_publish(
        pod, kube_cluster, swift_server, many_files, swift_container, "--threads", "1"
    )
    wait_for_objects(swift_server, swift_container, 3, process)
    swift_server.pause("proxy")  # requests now hang: the publish cannot finish
    try:
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
        took = time.monotonic() - signalled
    finally:
        swift_server.resume("proxy")
    assert process.returncode == 143, err
    assert "grace period (6 s) ran out while publishing: the publish did not finish" in err
    assert json.loads(out)["status"] == "interrupted"
    assert took < 6  # it ended by itself, before a SIGKILL would have come
    assert f"out/{MANIFEST_NAME}" not in object_names(swift_server, swift_container)


def test_once_finishing_a_second_sigterm_changes_nothing_and_sigint_stops_at_once(
    job_pod, core, kube_cluster, swift_server, swift_container, tmp_path
):
    # A processor that ignores SIGTERM, in a pod being deleted: the publisher waits for it.
    spec = {
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": 10,
        "containers": [
            {
                "name": "processor",
                "image": "busybox:1.36",
                "command": ["sh", "-c", "trap '' TERM; while true; do sleep 0.2; done"],
            }
        ],
    }
    pod = job_pod("finishing", spec, lambda p: p.status.phase == "Running")
    process = start_publish(pod, kube_cluster, swift_server, tmp_path, swift_container)
    wait_until_preparing(swift_server, swift_container, process)
    core.delete_namespaced_pod(pod, kube_cluster.namespace)
    process.send_signal(signal.SIGTERM)  # what the kubelet would send it
    time.sleep(1.0)
    process.send_signal(signal.SIGTERM)
    time.sleep(1.0)
    assert process.poll() is None  # still waiting for the processor
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=10)
    assert process.returncode == 130, err
    assert "pod is being ended (deleted, grace period 10 s)" in err
    assert "SIGTERM again: still finishing" in err
    assert json.loads(out)["status"] == "interrupted"
    assert object_names(swift_server, swift_container) == []


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def graceful():
    """A GracefulStop driven by hand (its handlers called directly, not installed).

    The real-time interval timer is the process's own: pytest-timeout's is put back after.
    """
    saved = signal.setitimer(signal.ITIMER_REAL, 0)
    clock = _Clock()
    stop = GracefulStop(margin=2.0, clock=clock)
    try:
        yield stop, clock
    finally:
        signal.setitimer(signal.ITIMER_REAL, *saved)


def test_graceful_stop_sigterm_while_waiting_interrupts(graceful):
    stop, _ = graceful
    with pytest.raises(Interrupted) as raised:
        stop._on_sigterm(signal.SIGTERM, None)
    assert raised.value.exit_code == 143
    assert signal.getitimer(signal.ITIMER_REAL)[0] == 0  # no clock running


def test_graceful_stop_sigterm_while_uploading_arms_the_rest_of_the_grace(graceful):
    stop, clock = graceful
    stop.uploading(30)
    stop._on_sigterm(signal.SIGTERM, None)
    assert 27.5 < signal.getitimer(signal.ITIMER_REAL)[0] <= 28.0  # 30 s less the margin
    clock.now += 20
    stop._on_sigterm(signal.SIGTERM, None)  # again: changes nothing
    assert 27.0 < signal.getitimer(signal.ITIMER_REAL)[0] <= 28.0
    stop.start(30)  # e.g. the pod's ending was confirmed: what is left since the first
    assert 7.0 < signal.getitimer(signal.ITIMER_REAL)[0] <= 8.0
    stop.cancel()
    assert signal.getitimer(signal.ITIMER_REAL)[0] == 0


def test_graceful_stop_with_no_time_left_gives_up_at_once(graceful):
    stop, clock = graceful
    stop.uploading(30)
    stop._on_sigterm(signal.SIGTERM, None)
    clock.now += 29
    with pytest.raises(GraceExpired, match=r"grace period \(30 s\) ran out while publishing"):
        stop.start(30)
    stop.waiting_for = "processor"
    with pytest.raises(GraceExpired, match="ran out before container processor ended"):
        stop._on_alarm(signal.SIGALRM, None)
