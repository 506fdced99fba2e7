"""The example Job end to end: init container, two containers, a sidecar using in-cluster
config, watches on the pod (in order, resumed, compacted) and the Job's failure."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import kubernetes
import pytest
from kubernetes.client.exceptions import ApiException

from devstack.examplejob import INIT_TEXT, build_job
from tests.support.kube import condition_types, is_finished, wait_for_job, wait_for_pod
from tests.support.names import unique_name
from tests.support.waiting import eventually

PHASES = ("Pending", "Running", "Succeeded", "Failed")


@pytest.fixture(scope="module")
def example(batch, core, namespace) -> Any:
    """Runs the example Job once; returns what the tests below look at."""
    name = unique_name("example")
    created = batch.create_namespaced_job(namespace, build_job(name))
    since = created.metadata.resource_version
    first = wait_for_pod(core, namespace, name, lambda pod: True, resource_version=since)
    # Watching the pod by name from the Job's creation replays every transition, in order.
    events = []
    stream = kubernetes.watch.Watch().stream(
        core.list_namespaced_pod,
        namespace,
        field_selector=f"metadata.name={first.metadata.name}",
        resource_version=since,
        timeout_seconds=60,
    )
    for event in stream:
        events.append(event)
        if is_finished(event["object"]):
            break
    job = wait_for_job(batch, namespace, name)
    pod = core.read_namespaced_pod(first.metadata.name, namespace)
    logs = {
        c: core.read_namespaced_pod_log(pod.metadata.name, namespace, container=c)
        for c in ("init", "main", "side")
    }
    yield {"name": name, "job": job, "pod": pod, "events": events, "logs": logs, "first": first}
    batch.delete_namespaced_job(name, namespace, propagation_policy="Background")


def _states(pod: Any) -> dict[str, Any]:
    statuses = [*(pod.status.init_container_statuses or []), *(pod.status.container_statuses or [])]
    return {s.name: s.state for s in statuses}


def test_job_fails_with_main_exit_code_3(example):
    assert "Failed" in condition_types(example["job"])
    assert "Complete" not in condition_types(example["job"])
    main = _states(example["pod"])["main"]
    assert main.terminated.exit_code == 3
    assert main.terminated.reason == "Error"


def test_failure_conditions_come_as_a_pair(example):
    conditions = {c.type: c for c in example["job"].status.conditions}
    assert conditions["FailureTarget"].reason == "BackoffLimitExceeded"
    assert conditions["Failed"].reason == "BackoffLimitExceeded"
    assert example["job"].status.failed == 1


def test_sidecar_saw_main_exit_through_in_cluster_config(example):
    assert "main exit 3" in example["logs"]["side"]
    assert _states(example["pod"])["side"].terminated.exit_code == 0


def test_main_log_holds_init_text_and_done(example):
    log = example["logs"]["main"]
    assert log.splitlines() == [INIT_TEXT, "done"]
    assert not log.startswith("b'")


def test_watch_delivers_transitions_in_order(example):
    events = example["events"]
    versions = [int(e["object"].metadata.resource_version) for e in events]
    assert versions == sorted(versions)
    assert len(set(versions)) == len(versions)
    phases = [e["object"].status.phase for e in events]
    assert [PHASES.index(p) for p in phases] == sorted(PHASES.index(p) for p in phases)
    assert phases[0] == "Pending"
    assert phases[-1] == "Failed"
    assert "Running" in phases

    def first(container: str, *, running: bool = False) -> int:
        for index, event in enumerate(events):
            state = _states(event["object"]).get(container)
            if state is not None and (state.terminated or (running and state.running)):
                return index
        raise AssertionError(f"{container} never got there")

    init_started = first("init", running=True)
    init_done = first("init")
    main_running = first("main", running=True)
    main_done = first("main")
    side_done = first("side")
    assert init_started <= init_done < main_running <= main_done < side_done
    assert events[0]["type"] == "ADDED"
    assert all(e["type"] == "MODIFIED" for e in events[1:])


def test_waiting_reasons_before_start(example):
    with_states = [_states(e["object"]) for e in example["events"] if _states(e["object"])]
    assert with_states[0]["main"].waiting.reason == "PodInitializing"
    assert with_states[0]["init"].waiting.reason == "PodInitializing"


def test_resumed_watch_gets_only_later_events(example, core, namespace):
    events = example["events"]
    middle = len(events) // 2
    since = events[middle]["object"].metadata.resource_version
    stream = kubernetes.watch.Watch().stream(
        core.list_namespaced_pod,
        namespace,
        field_selector=f"metadata.name={example['pod'].metadata.name}",
        resource_version=since,
        timeout_seconds=1,
    )
    later = [int(e["object"].metadata.resource_version) for e in stream]
    expected = [int(e["object"].metadata.resource_version) for e in events[middle + 1 :]]
    assert later[: len(expected)] == expected
    assert all(v > int(since) for v in later)


@pytest.mark.fault
def test_compacted_watch_gets_410(example, core, namespace, local):
    old = example["first"].metadata.resource_version
    local.compact()
    stream = kubernetes.watch.Watch().stream(
        core.list_namespaced_pod,
        namespace,
        field_selector=f"metadata.name={example['pod'].metadata.name}",
        resource_version=old,
        timeout_seconds=2,
    )
    with pytest.raises(ApiException) as raised:
        next(stream)
    assert raised.value.status == 410
    assert "Expired" in raised.value.reason


@pytest.mark.fault
def test_compacted_raw_watch_sends_expired_status(example, api, namespace, local):
    local.compact()
    response = kubernetes.client.CoreV1Api(api).list_namespaced_pod(
        namespace, watch=True, resource_version="1", timeout_seconds=2, _preload_content=False
    )
    lines = [json.loads(line) for line in response.read().decode().splitlines() if line]
    assert lines == [
        {
            "type": "ERROR",
            "object": {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": lines[0]["object"]["message"],
                "reason": "Expired",
                "details": {},
                "code": 410,
            },
        }
    ]
    assert lines[0]["object"]["message"].startswith("too old resource version: 1 (")


def test_audit_log_names_the_sidecar_service_account(example, kube_cluster, namespace):
    if kube_cluster.audit_log is None:
        pytest.skip("audit log of the local cluster")
    records = [json.loads(line) for line in kube_cluster.audit_log.read_text().splitlines()]
    sidecar = [
        r for r in records if r["user"]["username"] == f"system:serviceaccount:{namespace}:example"
    ]
    assert sidecar, "the sidecar's requests are in the audit log"
    watch = [r for r in sidecar if r["verb"] == "watch"]
    assert watch
    assert watch[0]["objectRef"] == {
        "resource": "pods",
        "apiVersion": "v1",
        "namespace": namespace,
        "name": example["pod"].metadata.name,
    }
    assert watch[0]["responseStatus"]["code"] == 200
    admin = [r for r in records if r["user"]["username"] == "admin" and r["verb"] == "create"]
    assert any(
        r["objectRef"]["resource"] == "jobs" and r["objectRef"]["apiGroup"] == "batch"
        for r in admin
    )


@pytest.mark.fault
def test_a_lagging_watch_gets_the_held_events_late_and_in_order(core, namespace, local):
    lagging = {"lag": unique_name("lag")}
    before, held, after = unique_name("before"), unique_name("held"), unique_name("after")
    names = (before, held, after)
    since = core.list_namespaced_config_map(namespace).metadata.resource_version
    events: list[tuple[str, str, str]] = []
    watch = kubernetes.watch.Watch()

    def follow() -> None:
        stream = watch.stream(
            core.list_namespaced_config_map, namespace, resource_version=since, timeout_seconds=60
        )
        for event in stream:
            meta = event["object"].metadata
            if meta.name in names:
                events.append((event["type"], meta.name, (event["object"].data or {}).get("v")))
            if len(events) == 4:
                watch.stop()

    def seen_from_since() -> list[str]:
        resumed = kubernetes.watch.Watch().stream(
            core.list_namespaced_config_map, namespace, resource_version=since, timeout_seconds=1
        )
        return [e["object"].metadata.name for e in resumed if e["object"].metadata.name in names]

    watcher = threading.Thread(target=follow)
    try:
        with local.watch_lag("configmaps", lagging):
            watcher.start()
            core.create_namespaced_config_map(namespace, {"metadata": {"name": before}})
            body = {"metadata": {"name": held, "labels": lagging}, "data": {"v": "1"}}
            core.create_namespaced_config_map(namespace, body)
            core.patch_namespaced_config_map(held, namespace, {"data": {"v": "2"}})
            core.create_namespaced_config_map(namespace, {"metadata": {"name": after}})
            # Reads are current; the watch stopped at the held object, so it saw only what
            # came before it, as does a watch resumed meanwhile from the same version.
            assert core.read_namespaced_config_map(held, namespace).data == {"v": "2"}
            eventually(lambda: events, timeout=10, interval=0.05, what="the first event")
            time.sleep(0.5)  # time enough for an event that should not come
            assert events == [("ADDED", before, None)]
            assert seen_from_since() == [before]
        watcher.join(timeout=60)
        assert events == [
            ("ADDED", before, None),
            ("ADDED", held, "1"),
            ("MODIFIED", held, "2"),
            ("ADDED", after, None),
        ]
        assert seen_from_since() == [before, held, held, after]
    finally:
        watch.stop()
        for name in names:
            core.delete_namespaced_config_map(name, namespace)
