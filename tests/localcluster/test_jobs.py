"""The job controller and deletion: workers, retries, deadlines, TTL, propagation policies."""

from __future__ import annotations

import os

import kubernetes
import pytest
from kubernetes.client.exceptions import ApiException

from tests.support.kube import (
    condition_types,
    container,
    is_running,
    job_manifest,
    status_body,
    wait_for_job,
    wait_for_pod,
    wait_until_gone,
    wait_until_job_gone,
)
from tests.support.names import unique_name
from tests.support.waiting import eventually


def _pods(core, namespace, job_name):
    return core.list_namespaced_pod(namespace, label_selector=f"job-name={job_name}").items


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is not running any more either.
    with open(f"/proc/{pid}/stat") as handle:
        return handle.read().rsplit(")", 1)[1].split()[0] != "Z"


def _wait_for_log_line(core, namespace, pod, text):
    """Once the container printed ``text`` (it has set up its signal handling)."""
    stream = kubernetes.watch.Watch().stream(
        core.read_namespaced_pod_log, pod, namespace, container="main"
    )
    for line in stream:
        if line == text:
            return
    raise AssertionError(f"{pod} never printed {text!r}")


def test_parallel_workers_complete(jobs, batch, core, namespace):
    name = unique_name("workers")
    jobs(job_manifest(name, [container("main", "echo work")], parallelism=2, completions=3))
    job = wait_for_job(batch, namespace, name)
    assert condition_types(job) == ["SuccessCriteriaMet", "Complete"]
    assert job.status.succeeded == 3
    assert job.status.completion_time is not None
    pods = _pods(core, namespace, name)
    assert len(pods) == 3
    assert {p.status.phase for p in pods} == {"Succeeded"}
    owner = pods[0].metadata.owner_references[0]
    assert (owner.kind, owner.name, owner.controller) == ("Job", name, True)
    assert all(p.metadata.name.startswith(f"{name}-") for p in pods)


def test_backoff_limit_retries_then_fails(jobs, batch, core, namespace):
    name = unique_name("retry")
    jobs(job_manifest(name, [container("main", "exit 1")], backoffLimit=1))
    job = wait_for_job(batch, namespace, name)
    assert condition_types(job) == ["FailureTarget", "Failed"]
    assert job.status.conditions[-1].reason == "BackoffLimitExceeded"
    assert job.status.failed == 2
    assert [p.status.phase for p in _pods(core, namespace, name)] == ["Failed", "Failed"]


def test_active_deadline_kills_running_pods(jobs, batch, core, namespace):
    name = unique_name("deadline")
    jobs(job_manifest(name, [container("main", "sleep 60")], activeDeadlineSeconds=1))
    job = wait_for_job(batch, namespace, name, timeout=30)
    assert "Failed" in condition_types(job)
    assert job.status.conditions[-1].reason == "DeadlineExceeded"
    assert job.status.active is None
    for pod in _pods(core, namespace, name):
        wait_until_gone(core, namespace, pod.metadata.name)


def test_a_pod_past_its_own_deadline_fails_and_its_containers_get_sigterm(
    jobs, batch, core, namespace
):
    name = unique_name("pod-deadline")
    script = "trap 'sleep 1; exit 7' TERM; echo ready; while true; do sleep 0.1; done"
    jobs(job_manifest(name, [container("main", script)], pod_spec={"activeDeadlineSeconds": 2}))
    # Failed at once, as the kubelet says it; the container ends when it has handled TERM.
    pod = wait_for_pod(core, namespace, name, lambda p: p.status.phase == "Failed")
    assert pod.status.reason == "DeadlineExceeded"
    assert pod.status.container_statuses[0].state.running is not None
    pod = wait_for_pod(
        core, namespace, name, lambda p: bool(p.status.container_statuses[0].state.terminated)
    )
    assert pod.status.phase == "Failed"
    assert (pod.status.reason, pod.status.message) == (
        "DeadlineExceeded",
        "Pod was active on the node longer than the specified deadline",
    )
    assert pod.status.container_statuses[0].state.terminated.exit_code == 7
    assert pod.metadata.deletion_timestamp is None  # it stays, unlike a deleted pod
    job = wait_for_job(batch, namespace, name)
    assert "Failed" in condition_types(job)
    events = core.list_namespaced_event(
        namespace, field_selector=f"involvedObject.name={pod.metadata.name}"
    ).items
    assert "DeadlineExceeded" in {e.reason for e in events}


def test_a_pods_deadline_may_be_set_or_lowered_but_not_raised_or_removed(jobs, core, namespace):
    name = unique_name("deadline-update")
    jobs(job_manifest(name, [container("main", "sleep 60")]))
    pod = wait_for_pod(core, namespace, name, is_running).metadata.name
    core.patch_namespaced_pod(pod, namespace, {"spec": {"activeDeadlineSeconds": 600}})
    core.patch_namespaced_pod(pod, namespace, {"spec": {"activeDeadlineSeconds": 300}})
    for value, words in ((400, "less than or equal to previous value"), (None, "nil value")):
        with pytest.raises(ApiException) as raised:
            core.patch_namespaced_pod(pod, namespace, {"spec": {"activeDeadlineSeconds": value}})
        assert raised.value.status == 422
        assert words in status_body(raised.value)["message"]
    core.patch_namespaced_pod(pod, namespace, {"spec": {"activeDeadlineSeconds": 1}})
    ended = wait_for_pod(core, namespace, name, lambda p: p.status.reason == "DeadlineExceeded")
    assert ended.spec.active_deadline_seconds == 1


def test_ttl_after_finished_removes_job_and_pods(batch, core, namespace):
    name = unique_name("ttl")
    created = batch.create_namespaced_job(
        namespace, job_manifest(name, [container("main", "true")], ttlSecondsAfterFinished=0)
    )
    since = created.metadata.resource_version
    pod = wait_for_pod(core, namespace, name, lambda p: True, resource_version=since)
    wait_until_gone(core, namespace, pod.metadata.name)
    wait_until_job_gone(batch, namespace, name)
    with pytest.raises(ApiException) as raised:
        batch.read_namespaced_job(name, namespace)
    assert raised.value.status == 404


def test_background_delete_removes_job_pods_and_processes(kube_cluster, batch, core, namespace):
    name = unique_name("background")
    batch.create_namespaced_job(namespace, job_manifest(name, [container("main", "sleep 300")]))
    pod = wait_for_pod(core, namespace, name, is_running)
    local = kube_cluster.local
    pids = []
    if local is not None:
        pids = [pid for key, pid in local.container_pids().items() if key[1] == pod.metadata.name]
        assert pids
        assert all(_alive(pid) for pid in pids)
    batch.delete_namespaced_job(name, namespace, propagation_policy="Background")
    with pytest.raises(ApiException) as raised:
        batch.read_namespaced_job(name, namespace)
    assert raised.value.status == 404
    wait_until_gone(core, namespace, pod.metadata.name)
    assert _pods(core, namespace, name) == []
    assert not any(_alive(pid) for pid in pids)


def test_default_delete_orphans_pods(batch, core, namespace):
    name = unique_name("orphan")
    batch.create_namespaced_job(namespace, job_manifest(name, [container("main", "true")]))
    wait_for_job(batch, namespace, name)
    batch.delete_namespaced_job(name, namespace)
    wait_until_job_gone(batch, namespace, name)
    pods = _pods(core, namespace, name)
    assert len(pods) == 1
    assert not pods[0].metadata.owner_references
    core.delete_namespaced_pod(pods[0].metadata.name, namespace)
    wait_until_gone(core, namespace, pods[0].metadata.name)


def test_foreground_delete_waits_for_pods(batch, core, namespace):
    name = unique_name("foreground")
    batch.create_namespaced_job(namespace, job_manifest(name, [container("main", "sleep 300")]))
    pod = wait_for_pod(core, namespace, name, is_running)
    answer = batch.delete_namespaced_job(name, namespace, propagation_policy="Foreground")
    assert answer["metadata"]["deletionTimestamp"]
    assert answer["metadata"]["finalizers"] == ["foregroundDeletion"]
    wait_until_gone(core, namespace, pod.metadata.name)
    wait_until_job_gone(batch, namespace, name)


def test_pod_delete_sends_sigterm_then_reports_termination(jobs, batch, core, namespace):
    name = unique_name("sigterm")
    script = "trap 'echo got TERM; exit 7' TERM; echo ready; while true; do sleep 0.1; done"
    jobs(job_manifest(name, [container("main", script)]))
    pod = wait_for_pod(core, namespace, name, is_running)
    _wait_for_log_line(core, namespace, pod.metadata.name, "ready")
    core.delete_namespaced_pod(pod.metadata.name, namespace, grace_period_seconds=10)
    stream = kubernetes.watch.Watch().stream(
        core.list_namespaced_pod,
        namespace,
        field_selector=f"metadata.name={pod.metadata.name}",
        resource_version=pod.metadata.resource_version,
        timeout_seconds=20,
    )
    last = None
    for event in stream:
        if event["type"] == "DELETED":
            break
        last = event["object"]
    assert last is not None
    assert last.metadata.deletion_timestamp is not None
    terminated = last.status.container_statuses[0].state.terminated
    assert terminated.exit_code == 7
    assert last.status.phase == "Failed"


def test_grace_period_ends_with_sigkill(jobs, core, namespace):
    name = unique_name("sigkill")
    script = "trap '' TERM; echo ready; while true; do sleep 0.1; done"
    jobs(job_manifest(name, [container("main", script)]))
    pod = wait_for_pod(core, namespace, name, is_running)
    _wait_for_log_line(core, namespace, pod.metadata.name, "ready")
    core.delete_namespaced_pod(pod.metadata.name, namespace, grace_period_seconds=1)
    wait_until_gone(core, namespace, pod.metadata.name, timeout=15)


def test_suspended_job_makes_no_pods(jobs, batch, core, namespace):
    name = unique_name("suspended")
    jobs(job_manifest(name, [container("main", "true")], suspend=True))
    job = wait_for_job(batch, namespace, name, lambda j: "Suspended" in condition_types(j))
    assert job.status.active is None
    assert _pods(core, namespace, name) == []


def test_failing_init_container_fails_the_pod(jobs, batch, core, namespace):
    name = unique_name("initfail")
    init = [
        container("first", "echo one"),
        container("second", "exit 5"),
        container("third", "true"),
    ]
    jobs(job_manifest(name, [container("main", "echo never")], init=init))
    job = wait_for_job(batch, namespace, name)
    assert "Failed" in condition_types(job)
    pod = _pods(core, namespace, name)[0]
    assert pod.status.phase == "Failed"
    inits = {s.name: s.state for s in pod.status.init_container_statuses}
    assert inits["first"].terminated.exit_code == 0
    assert inits["second"].terminated.exit_code == 5
    assert inits["third"].waiting is not None
    assert pod.status.container_statuses[0].state.waiting is not None


def test_pods_created_while_their_job_is_being_deleted_go_too(batch, core, namespace):
    # Many workers that no node can run (cheap to create), and the Job deleted while the
    # controller is still creating them: none may outlive it.
    name = unique_name("many")
    nowhere = {"nodeSelector": {"pman.chrisproject.org/test-node": "none"}}
    manifest = job_manifest(
        name, [container("main", "true")], pod_spec=nowhere, parallelism=400, completions=400
    )
    batch.create_namespaced_job(namespace, manifest)
    eventually(lambda: _pods(core, namespace, name), timeout=30, interval=0.02, what="a pod")
    batch.delete_namespaced_job(name, namespace, propagation_policy="Background")
    wait_until_job_gone(batch, namespace, name)
    eventually(
        lambda: not _pods(core, namespace, name),
        interval=0.2,
        what="every pod collected with its job",
    )
