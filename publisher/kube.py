"""The one module that talks to the Kubernetes API: wait until a container of our pod ends.

`PodWatcher.wait_for_termination` lists the pod once (by name, with a field selector),
then watches from the list's resourceVersion, resuming from the last version seen whenever
the stream ends and listing again on 410 Gone. It returns a `Termination` for any end of
the container (Completed, Error, OOMKilled, DeadlineExceeded...) and raises `WaitFailed`
(pod deleted, deadline passed) or `ClusterError` (API unreachable or refusing).
`PodWatcher.pod_ending` says whether Kubernetes is ending the pod (deleted, failed for its
own deadline or an eviction) and how long its containers have before SIGKILL.
Kubernetes client errors never leave this module.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import urllib3
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from publisher.errors import ClusterError, WaitFailed

log = logging.getLogger("publisher")


@dataclass(frozen=True)
class Termination:
    """How the watched container ended (the manifest's `processor` entry)."""

    container: str
    exit_code: int
    reason: str
    message: str
    started_at: str
    finished_at: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


DEFAULT_GRACE = 30
"""Kubernetes' default terminationGracePeriodSeconds."""


@dataclass(frozen=True)
class PodEnding:
    """Kubernetes is ending the pod: why, and the grace period it gave its containers."""

    why: str
    """``deleted`` (its Job's deadline, a delete, an API eviction), the failed pod's reason
    (``DeadlineExceeded``, ``Evicted``), or ``unknown`` (the API could not be asked, or the
    processor had ended by the time it was)."""
    grace_seconds: int

    def as_dict(self) -> dict[str, Any]:
        return {"why": self.why, "grace_period_seconds": self.grace_seconds}


def api_client(kubeconfig: str | None) -> client.ApiClient:
    """An API client from a kubeconfig file, or the in-cluster service account."""
    configuration = client.Configuration()
    try:
        if kubeconfig:
            config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
        else:
            config.load_incluster_config(client_configuration=configuration)
    except (ConfigException, OSError) as exc:
        where = kubeconfig or "the in-cluster service account"
        raise ClusterError(f"cannot configure the Kubernetes client from {where}: {exc}") from exc
    configuration.retries = False  # this module owns the retries
    return client.ApiClient(configuration)


class PodWatcher:
    """Waits for one container of one pod to terminate."""

    def __init__(
        self,
        api: client.ApiClient,
        namespace: str,
        pod: str,
        *,
        watch_timeout: int = 600,
        deadline: float | None = None,
        retry_delay: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.core = client.CoreV1Api(api)
        self.namespace, self.pod = namespace, pod
        self.watch_timeout = watch_timeout
        self.deadline = deadline
        self.retry_delay = retry_delay
        self.clock = clock
        self.requests = 0
        """Kubernetes API requests made (one per list, one per watch stream)."""
        self.relists = 0
        """How often a watch expired (410 Gone) and the pod was listed again."""
        self.grace_seconds = DEFAULT_GRACE
        """The pod's terminationGracePeriodSeconds, as last seen."""

    def wait_for_termination(
        self, container: str, *, resource_version: str | None = None
    ) -> Termination:
        """Return once `container` has terminated; watch from `resource_version` if given."""
        while True:
            self._check_deadline(container)
            try:
                if resource_version is None:
                    found, resource_version = self._list(container)
                    if found is not None:
                        return found
                found, resource_version = self._watch(container, resource_version)
                if found is not None:
                    return found
            except ApiException as exc:
                resource_version = self._on_api_error(exc, resource_version)
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                # The stream broke (API server restart, network): resume after a pause.
                log.warning("watch of pod %s interrupted (%s); resuming", self.pod, exc)
                time.sleep(self.retry_delay)

    def _get(self, timeout: tuple[float, float]) -> Any:
        """The pod, listed by name (the service account may list and watch, not get)."""
        self.requests += 1
        return self.core.list_namespaced_pod(
            self.namespace, field_selector=f"metadata.name={self.pod}", _request_timeout=timeout
        )

    def _list(self, container: str) -> tuple[Termination | None, str]:
        pods = self._get((10, 30))
        if not pods.items:
            raise WaitFailed(f"pod {self.namespace}/{self.pod} does not exist")
        self._note_grace(pods.items[0])
        return terminated(pods.items[0], container), pods.metadata.resource_version

    def _note_grace(self, pod: Any) -> None:
        grace = pod.spec.termination_grace_period_seconds if pod.spec else None
        if grace is not None:
            self.grace_seconds = grace

    def pod_ending(self, container: str, *, settle: float = 2.0) -> PodEnding | None:
        """Whether Kubernetes is ending the pod; None if it is not (SIGTERM just arrived).

        The kubelet sends SIGTERM to every container of a pod that was deleted (also by
        its Job's activeDeadlineSeconds), passed its own activeDeadlineSeconds or is evicted,
        and SIGKILL once the grace period is over. It may signal before the API shows why
        (a failed pod's status is written a moment later), so the pod is looked at again
        for up to `settle` seconds. It counts as ending when it is being deleted, has
        failed, or `container` has ended meanwhile (it was signalled too). When the API
        cannot be asked, it is taken to be ending: in a pod, SIGTERM nearly always means so.
        """
        until = self.clock() + settle
        while True:
            try:
                pods = self._get((2, 3))
            except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
                log.warning("cannot tell whether pod %s is being ended (%s)", self.pod, exc)
                return PodEnding("unknown", self.grace_seconds)
            if not pods.items:
                return None
            pod = pods.items[0]
            self._note_grace(pod)
            if pod.metadata.deletion_timestamp is not None:
                grace = pod.metadata.deletion_grace_period_seconds
                return PodEnding("deleted", self.grace_seconds if grace is None else grace)
            if pod.status is not None and pod.status.phase == "Failed":
                return PodEnding(pod.status.reason or "Failed", self.grace_seconds)
            if terminated(pod, container) is not None:
                return PodEnding("unknown", self.grace_seconds)
            if self.clock() >= until:
                return None
            time.sleep(0.5)

    def _watch(self, container: str, resource_version: str) -> tuple[Termination | None, str]:
        self.requests += 1
        seconds = self._watch_seconds()
        stream = watch.Watch().stream(
            self.core.list_namespaced_pod,
            self.namespace,
            field_selector=f"metadata.name={self.pod}",
            resource_version=resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=seconds,
            # Read timeout beyond the server's own, to notice a silently dead connection.
            _request_timeout=(10, seconds + 30),
        )
        for event in stream:
            pod = event["object"]
            if event["type"] == "DELETED":
                raise WaitFailed(f"pod {self.namespace}/{self.pod} was deleted")
            if event["type"] == "BOOKMARK":
                resource_version = (
                    pod["metadata"]["resourceVersion"]
                    if isinstance(pod, dict)
                    else pod.metadata.resource_version
                )
                continue
            resource_version = pod.metadata.resource_version
            self._note_grace(pod)
            found = terminated(pod, container)
            if found is not None:
                return found, resource_version
        return None, resource_version

    def _on_api_error(self, exc: ApiException, resource_version: str | None) -> str | None:
        if exc.status == 410:
            log.info("watch of pod %s expired (410); listing again", self.pod)
            self.relists += 1
            return None
        if exc.status in (401, 403):
            raise ClusterError(
                f"the Kubernetes API refused to list/watch pods in {self.namespace} "
                f"({exc.status} {exc.reason}): the service account needs list and watch on pods"
            ) from exc
        if exc.status == 404:
            raise WaitFailed(f"pod {self.namespace}/{self.pod}: namespace not found") from exc
        log.warning("Kubernetes API answered %s %s; retrying", exc.status, exc.reason)
        time.sleep(self.retry_delay)
        return resource_version

    def _watch_seconds(self) -> int:
        """How long the server may hold the next watch: never past the deadline."""
        if self.deadline is None:
            return self.watch_timeout
        left = math.ceil(self.deadline - self.clock())
        return max(1, min(self.watch_timeout, left))

    def _check_deadline(self, container: str) -> None:
        if self.deadline is not None and self.clock() > self.deadline:
            raise WaitFailed(f"gave up waiting for container {container} of pod {self.pod}")


def terminated(pod: Any, container: str) -> Termination | None:
    """The container's termination, if the pod object says it has terminated."""
    statuses = (pod.status.container_statuses or []) if pod.status else []
    for status in statuses:
        if status.name != container or status.state is None:
            continue
        done = status.state.terminated
        if done is None:
            if status.state.running is not None:
                return None  # even in a failed pod: it is being stopped, its end will come
            break
        return Termination(
            container=container,
            exit_code=done.exit_code,
            reason=done.reason or ("Completed" if done.exit_code == 0 else "Error"),
            message=done.message or "",
            started_at=_time(done.started_at),
            finished_at=_time(done.finished_at),
        )
    if pod.status is not None and pod.status.phase in ("Succeeded", "Failed"):
        # The pod ended and the container never ran (e.g. its deadline passed before).
        reason = pod.status.reason or pod.status.phase
        return Termination(container, -1, reason, pod.status.message or "", "", "")
    return None


def _time(value: datetime | str | None) -> str:
    if value is None:
        return ""
    return value.isoformat() if isinstance(value, datetime) else str(value)
