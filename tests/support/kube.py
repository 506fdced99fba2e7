"""Kubernetes objects for tests: manifests, and waits that watch (official client, real HTTP)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import kubernetes
from kubernetes.client.exceptions import ApiException

Obj = dict[str, Any]
IMAGE = "busybox:1.36"
PYTHON_IMAGE = "python:3.11-slim"


def container(name: str, script: str, **extra: Any) -> Obj:
    return {"name": name, "image": IMAGE, "command": ["sh", "-c", script], **extra}


def job_manifest(
    name: str,
    containers: list[Obj],
    *,
    init: list[Obj] | None = None,
    volumes: list[Obj] | None = None,
    restart_policy: str = "Never",
    pod_spec: Obj | None = None,
    **spec: Any,
) -> Obj:
    template_spec: Obj = {"restartPolicy": restart_policy, "containers": containers}
    if init:
        template_spec["initContainers"] = init
    if volumes:
        template_spec["volumes"] = volumes
    template_spec.update(pod_spec or {})
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"backoffLimit": 0, "template": {"spec": template_spec}, **spec},
    }


def status_body(error: ApiException) -> Obj:
    return json.loads(error.body)


def condition_types(job: Any) -> list[str]:
    return [c.type for c in job.status.conditions or [] if c.status == "True"]


def wait_for_job(
    batch: kubernetes.client.BatchV1Api,
    namespace: str,
    name: str,
    done: Callable[[Any], bool] | None = None,
    *,
    timeout: int = 60,
) -> Any:
    """The Job once ``done(job)`` (default: Complete or Failed); fails after ``timeout``."""
    done = done or (lambda j: bool({"Complete", "Failed"} & set(condition_types(j))))
    stream = kubernetes.watch.Watch().stream(
        batch.list_namespaced_job,
        namespace,
        field_selector=f"metadata.name={name}",
        timeout_seconds=timeout,
    )
    for event in stream:
        if event["type"] != "DELETED" and done(event["object"]):
            return event["object"]
    raise AssertionError(f"job {name} did not get there within {timeout}s")


def wait_for_pod(
    core: kubernetes.client.CoreV1Api,
    namespace: str,
    job_name: str,
    done: Callable[[Any], bool],
    *,
    timeout: int = 60,
    resource_version: str | None = None,
) -> Any:
    """The first pod of the Job for which ``done(pod)`` holds (seen from ``resource_version``)."""
    options = {"resource_version": resource_version} if resource_version else {}
    stream = kubernetes.watch.Watch().stream(
        core.list_namespaced_pod,
        namespace,
        label_selector=f"job-name={job_name}",
        timeout_seconds=timeout,
        **options,
    )
    for event in stream:
        if event["type"] != "DELETED" and done(event["object"]):
            return event["object"]
    raise AssertionError(f"no pod of job {job_name} got there within {timeout}s")


def _wait_gone(read: Callable, list_: Callable, namespace: str, name: str, timeout: int) -> None:
    try:
        current = read(name, namespace)
    except ApiException as error:
        if error.status == 404:
            return
        raise
    stream = kubernetes.watch.Watch().stream(
        list_,
        namespace,
        field_selector=f"metadata.name={name}",
        resource_version=current.metadata.resource_version,
        timeout_seconds=timeout,
    )
    for event in stream:
        if event["type"] == "DELETED":
            return
    raise AssertionError(f"{name} still there after {timeout}s")


def wait_until_gone(
    core: kubernetes.client.CoreV1Api, namespace: str, pod: str, *, timeout: int = 30
) -> None:
    _wait_gone(core.read_namespaced_pod, core.list_namespaced_pod, namespace, pod, timeout)


def wait_until_job_gone(
    batch: kubernetes.client.BatchV1Api, namespace: str, job: str, *, timeout: int = 30
) -> None:
    _wait_gone(batch.read_namespaced_job, batch.list_namespaced_job, namespace, job, timeout)


def state_of(pod: Any, container_name: str) -> Any:
    statuses = [*(pod.status.init_container_statuses or []), *(pod.status.container_statuses or [])]
    for status in statuses:
        if status.name == container_name:
            return status.state
    raise AssertionError(f"no status for container {container_name}")


def is_running(pod: Any) -> bool:
    return pod.status.phase == "Running" and all(
        s.state.running for s in pod.status.container_statuses or []
    )


def is_finished(pod: Any) -> bool:
    return pod.status.phase in ("Succeeded", "Failed")


def delete_job(batch: kubernetes.client.BatchV1Api, namespace: str, name: str) -> None:
    try:
        batch.delete_namespaced_job(
            name, namespace, propagation_policy="Background", grace_period_seconds=0
        )
    except ApiException as error:
        if error.status != 404:
            raise
