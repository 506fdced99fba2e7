"""The only module that talks to the Kubernetes API.

Objects go in and come out as the API's own JSON (plain dicts): responses are
decoded without the client's model classes, which keeps reads cheap and lets
the rest of pman work on literal data. Every failure leaves as one of pman's
errors (:mod:`pman.errors`), with the library's exception kept as ``__cause__``.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pydantic
import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException, OpenApiException
from kubernetes.config.config_exception import ConfigException
from kubernetes.watch.watch import iter_resp_lines

from pman.errors import (
    BadRequest,
    ClusterError,
    ClusterUnavailable,
    ClusterUnreachable,
    Forbidden,
    JobExists,
    JobNotFound,
    PmanError,
    WatchExpired,
)
from pman.metrics import Metrics
from pman.settings import Settings
from swiftcreds.reasons import MARKERS, short_reason

Obj = dict[str, Any]
log = logging.getLogger(__name__)

# (connect, read) seconds: well inside the 100 s clients wait for an answer.
TIMEOUT = (5, 30)


class Kube:
    """Jobs, pods and logs in one namespace."""

    def __init__(self, settings: Settings, *, metrics: Metrics | None = None) -> None:
        self.namespace = settings.job_namespace
        self.metrics = metrics or Metrics()
        configuration = load_configuration(settings)
        self.host: str = configuration.host
        self._api = client.ApiClient(configuration)
        self._batch = client.BatchV1Api(self._api)
        self._core = client.CoreV1Api(self._api)

    def close(self) -> None:
        """Release the connection pool."""
        self._api.close()

    def create_job(self, manifest: Obj) -> Obj:
        """Create a Job; :class:`JobExists` when its name is taken."""
        name = manifest["metadata"]["name"]
        with self._call("create", "jobs", name):
            response = self._batch.create_namespaced_job(
                self.namespace, manifest, _preload_content=False, _request_timeout=TIMEOUT
            )
        return _json(response)

    def read_job(self, name: str) -> Obj:
        """The Job called ``name``; :class:`JobNotFound` when there is none."""
        with self._call("get", "jobs", name):
            response = self._batch.read_namespaced_job(
                name, self.namespace, _preload_content=False, _request_timeout=TIMEOUT
            )
        return _json(response)

    def delete_job(self, name: str, *, uid: str | None = None) -> None:
        """Delete a Job and, in the background, its pods (which it would otherwise orphan);
        only the Job with ``uid`` when given, never a namesake created since."""
        body: Obj = {"propagationPolicy": "Background"}
        if uid:
            body["preconditions"] = {"uid": uid}
        with self._call("delete", "jobs", name):
            self._batch.delete_namespaced_job(
                name, self.namespace, body=body, _preload_content=False, _request_timeout=TIMEOUT
            )

    def list_jobs(self, selector: str, *, limit: int | None = None) -> tuple[list[Obj], str]:
        """Jobs matching a label selector, and the list's resourceVersion."""
        with self._call("list", "jobs"):
            response = self._batch.list_namespaced_job(
                self.namespace,
                label_selector=selector,
                limit=limit,
                _preload_content=False,
                _request_timeout=TIMEOUT,
            )
        return _items(_json(response))

    def list_pods(self, selector: str) -> tuple[list[Obj], str]:
        """Pods matching a label selector, and the list's resourceVersion."""
        with self._call("list", "pods"):
            response = self._core.list_namespaced_pod(
                self.namespace,
                label_selector=selector,
                _preload_content=False,
                _request_timeout=TIMEOUT,
            )
        return _items(_json(response))

    def read_log(self, pod: str, container: str, *, tail: int, limit: int) -> bytes | None:
        """At most ``limit`` bytes of the last ``tail`` lines of a container's log (Kubernetes
        cuts them at ``limit`` bytes from their start), or None while it has none."""
        try:
            with self._call("get", "pods/log", pod):
                response = self._core.read_namespaced_pod_log(
                    pod,
                    self.namespace,
                    container=container,
                    tail_lines=tail,
                    limit_bytes=limit,
                    _preload_content=False,
                    _request_timeout=TIMEOUT,
                )
                try:
                    data = response.read(limit)
                    if response.read(1):
                        # More than asked for: drop the connection rather than read on.
                        response.close()
                finally:
                    response.release_conn()
        except (JobNotFound, BadRequest):
            # The pod is gone, or its container is still waiting to start.
            return None
        return data

    def watch(
        self, resource: str, *, selector: str, resource_version: str, timeout: int
    ) -> WatchStream:
        """A :class:`WatchStream` of ``jobs`` or ``pods`` events after ``resource_version``.

        The server ends the stream after about ``timeout`` seconds.
        """
        lister = self._batch.list_namespaced_job if resource == "jobs" else None
        lister = lister or self._core.list_namespaced_pod
        with self._call("watch", resource):
            response = lister(
                self.namespace,
                label_selector=selector,
                watch=True,
                resource_version=resource_version,
                allow_watch_bookmarks=True,
                timeout_seconds=timeout,
                _preload_content=False,
                _request_timeout=(TIMEOUT[0], timeout + 10),
            )
        return WatchStream(response, self)

    @contextmanager
    def _call(
        self, verb: str, resource: str, name: str = "", *, timed: bool = True
    ) -> Iterator[None]:
        operation = f"{verb} {resource}"
        try:
            if timed:
                with self.metrics.kube_call(operation):
                    yield
            else:
                yield
        except ApiException as error:
            raise _api_error(error, verb, resource, name, self.namespace) from error
        except pydantic.ValidationError as error:
            raise BadRequest(f"the Kubernetes client refused the {resource}: {error}") from error
        except (urllib3.exceptions.HTTPError, OSError, OpenApiException) as error:
            raise ClusterUnreachable(
                f"the Kubernetes API at {self.host} is unreachable ({_network_reason(error)})"
            ) from error


class WatchStream:
    """Watch events as dicts (``{"type", "object"}``); :meth:`close` ends it from any thread."""

    def __init__(self, response: Any, kube: Kube) -> None:
        self._response = response
        self._kube = kube

    def __iter__(self) -> Iterator[Obj]:
        """Events until the server ends the stream; :class:`WatchExpired` on 410 Gone."""
        try:
            with self._kube._call("watch", "events", timed=False):
                for line in iter_resp_lines(self._response):
                    if line.strip():
                        yield _event(line)
        finally:
            self._response.release_conn()

    def close(self) -> None:
        """Unblock a reader waiting for the next event and drop the connection."""
        # urllib3 refuses (ValueError) once the stream has ended and its connection has gone
        # back to the pool: then there is no reader to unblock.
        with contextlib.suppress(ValueError, OSError):
            self._response.shutdown()


def _event(line: str) -> Obj:
    try:
        event = json.loads(line)
    except ValueError as error:
        raise ClusterError(
            f"the Kubernetes API sent a watch event that is not JSON: {error}"
        ) from error
    if not isinstance(event, dict):
        raise ClusterError("the Kubernetes API sent a watch event that is not an object")
    if event.get("type") == "ERROR":
        raise _watch_error(event.get("object") or {})
    return event


def load_configuration(settings: Settings) -> client.Configuration:
    """An explicit kubeconfig if one is set, else the in-cluster service account, else
    ``~/.kube/config``."""
    configuration = client.Configuration()
    try:
        if settings.kubeconfig:
            config.load_kube_config(settings.kubeconfig, client_configuration=configuration)
        else:
            _load_default(configuration)
    except (ConfigException, OSError) as error:
        if settings.kubeconfig:
            where = f"in {settings.kubeconfig}"
        else:
            where = "(KUBECONFIG is not set, and there is no pod service account or ~/.kube/config)"
        raise ClusterUnavailable(f"no usable Kubernetes configuration {where}: {error}") from error
    # Enough connections for a threaded server's concurrent requests plus the watches.
    configuration.connection_pool_maxsize = 32
    return configuration


def _load_default(configuration: client.Configuration) -> None:
    try:
        config.load_incluster_config(client_configuration=configuration)
    except ConfigException:
        config.load_kube_config(client_configuration=configuration)


def _network_reason(error: BaseException) -> str:
    """Why a connection failed, in a few words: the library's message nests the reprs of
    its objects, which say nothing to a client (the whole error is kept as the cause)."""
    reason = short_reason(error)
    if reason in MARKERS:
        return reason.lower()
    text = str(error)
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return "its TLS certificate is not trusted"
    if "SSL" in text:
        return "the TLS handshake failed"
    return "the connection failed"


def _json(response: Any) -> Obj:
    return json.loads(response.data or b"{}")


def _items(listing: Obj) -> tuple[list[Obj], str]:
    return listing.get("items") or [], (listing.get("metadata") or {}).get("resourceVersion", "")


def _api_error(error: ApiException, verb: str, resource: str, name: str, ns: str) -> PmanError:
    status = _status_body(error)
    message = status.get("message") or error.reason or str(error.status)
    code = error.status or 0
    if code == 404:
        return JobNotFound(f"no job {name!r}" if resource == "jobs" else message)
    if code == 409:
        return JobExists(f"a job {name!r} already exists")
    if code == 401:
        return Forbidden(
            f"Kubernetes did not accept pman's credentials to {verb} {resource} in "
            f"namespace {ns!r} ({message})"
        )
    if code == 403:
        return Forbidden(
            f"Kubernetes refused to {verb} {resource} in namespace {ns!r}: pman's service "
            f"account needs the {verb!r} permission on {resource!r} ({message})"
        )
    if code == 410:
        return WatchExpired(message)
    if code in (400, 422):
        return BadRequest(f"Kubernetes rejected the {resource}: {message}")
    if code == 429 or code >= 500 or code == 0:
        return ClusterUnavailable(f"the Kubernetes API is unavailable ({code}): {message}")
    return ClusterError(f"unexpected answer from Kubernetes ({code}): {message}")


def _watch_error(status: Obj) -> PmanError:
    error = ApiException(status=status.get("code") or 500, reason=status.get("reason"))
    error.body = json.dumps(status)
    return _api_error(error, "watch", "objects", "", "")


def _status_body(error: ApiException) -> Obj:
    try:
        body = json.loads(error.body or "{}")
    except (TypeError, ValueError):
        return {}
    return body if isinstance(body, dict) else {}
