"""The one module that talks to OpenStack Swift (and to its auth service).

`SwiftStore` authenticates once (Swift v1, or Keystone v3 through keystoneauth1), then
gives each thread its own keep-alive connection. It owns the retry policy: connection
errors, 5xx, 408 and 429 are retried with exponential backoff and jitter; an expired token
(401) is renewed once. python-swiftclient, requests and keystoneauth1 errors never leave
this module: callers see the errors of `publisher.errors`, with the original as __cause__.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

import requests
import urllib3
from keystoneauth1 import exceptions as ks_exceptions
from keystoneauth1 import session as ks_session
from swiftclient import client as swiftclient
from swiftclient.exceptions import ClientException

from publisher.credentials import Credentials, keystone_plugin
from publisher.errors import (
    AuthenticationFailed,
    ContainerNotFound,
    CredentialsError,
    IntegrityError,
    NothingToDownload,
    PublisherError,
    StoreUnreachable,
    TransferFailed,
)

log = logging.getLogger(__name__)

READ_CHUNK = 1 << 20


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry a transient failure."""

    attempts: int = 8
    """Tries per request, the first included: with the delays below, about a minute."""
    first_delay: float = 0.25
    max_delay: float = 10.0

    def delays(self) -> Iterator[float]:
        delay = self.first_delay
        for _ in range(self.attempts - 1):
            # Full jitter keeps many threads from retrying in lockstep.
            yield random.uniform(delay / 2, delay)
            delay = min(delay * 2, self.max_delay)


@dataclass(frozen=True)
class ObjectInfo:
    """One entry of a container listing."""

    name: str
    size: int
    etag: str
    content_type: str = ""
    slo_etag: str = ""


@dataclass(frozen=True)
class Segment:
    """One segment of a Static Large Object."""

    container: str
    name: str
    size: int
    etag: str


class _NotFound(Exception):
    """Internal: Swift answered 404."""


class _AuthExpired(Exception):
    """Internal: Swift answered 401 to a request carrying a token."""


class SwiftStore:
    """A Swift account reached with one set of credentials, safe to use from many threads."""

    def __init__(
        self,
        credentials: Credentials,
        *,
        retry: RetryPolicy | None = None,
        timeout: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.credentials = credentials
        self.retry = retry or RetryPolicy()
        self.timeout = timeout
        self._sleep = sleep
        self._lock = threading.Lock()
        self._endpoint: tuple[str, str] | None = None
        self._local = threading.local()
        self.retries = 0
        self.first_put_at: float | None = None

    # -- authentication ----------------------------------------------------------------
    def authenticate(self) -> None:
        """Get a token and the storage URL now (it is otherwise done on first use)."""
        self._current_endpoint()

    def _current_endpoint(self) -> tuple[str, str]:
        with self._lock:
            if self._endpoint is None:
                self._endpoint = self._with_retries("authenticating", self._fetch_endpoint)
            return self._endpoint

    def _renew(self, stale: tuple[str, str]) -> None:
        with self._lock:
            if self._endpoint == stale:
                self._endpoint = None

    def _fetch_endpoint(self) -> tuple[str, str]:
        creds = self.credentials
        if creds.kind == "v1":
            url, token = swiftclient.get_auth(
                creds.auth_url, creds.username, creds.secret, auth_version="1", timeout=self.timeout
            )
            return url, token
        sess = ks_session.Session(auth=keystone_plugin(creds), timeout=self.timeout)
        token = sess.get_token()
        url = sess.get_endpoint(
            service_type="object-store", interface="public", region_name=creds.region or None
        )
        if not url:
            where = f" in region {creds.region}" if creds.region else ""
            raise CredentialsError(f"the Keystone catalog has no object-store endpoint{where}")
        return url, token

    def _connection(self) -> swiftclient.Connection:
        url, token = self._current_endpoint()
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = swiftclient.Connection(
                preauthurl=url, preauthtoken=token, retries=0, timeout=self.timeout
            )
            self._local.conn = conn
        conn.url, conn.token = url, token
        return conn

    def _drop_connection(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # -- the retry loop ----------------------------------------------------------------
    def _with_retries(
        self, what: str, action: Callable[[], Any], *, retry: RetryPolicy | None = None
    ) -> Any:
        retry = retry or self.retry
        delays = retry.delays()
        while True:
            try:
                return action()
            except (_NotFound, _AuthExpired, PublisherError):
                raise
            except Exception as exc:
                translated = _translate(what, exc)
                if translated is None:
                    raise
                transient, error = translated
                delay = next(delays, None) if transient else None
                if delay is None:
                    if transient:
                        error = type(error)(f"{error} (gave up after {retry.attempts} tries)")
                    raise error from exc
                self.retries += 1
                log.warning("%s; retrying in %.1f s", error, delay)
                self._drop_connection()
                self._sleep(delay)

    def _call(
        self,
        what: str,
        request: Callable[[swiftclient.Connection], Any],
        *,
        retry: RetryPolicy | None = None,
    ) -> Any:
        """Run one Swift request with retries, renewing the token once on 401."""
        renewed = False
        while True:
            endpoint = self._current_endpoint()

            def attempt() -> Any:
                try:
                    return request(self._connection())
                except ClientException as exc:
                    if exc.http_status == 404:
                        raise _NotFound(what) from exc
                    if exc.http_status == 401:
                        raise _AuthExpired(what) from exc
                    raise

            try:
                return self._with_retries(what, attempt, retry=retry)
            except _AuthExpired as exc:
                if renewed:
                    raise AuthenticationFailed(f"{what}: Swift refused the token (401)") from exc
                renewed = True
                self._renew(endpoint)

    # -- operations --------------------------------------------------------------------
    def ensure_container(self, container: str) -> None:
        """Create the container when it does not exist (PUT is idempotent)."""
        self._call(f"creating container {container}", lambda c: c.put_container(container))

    def list_objects(self, container: str, prefix: str = "") -> list[ObjectInfo]:
        """Every object under `prefix`; raises ContainerNotFound."""

        def request(conn: swiftclient.Connection) -> list[dict]:
            return conn.get_container(container, prefix=prefix or None, full_listing=True)[1]

        try:
            listing = self._call(f"listing {container}/{prefix}", request)
        except _NotFound:
            raise ContainerNotFound(f"container {container!r} does not exist") from None
        return [_object_info(entry) for entry in listing if "name" in entry]

    def put_object(
        self,
        container: str,
        name: str,
        body: bytes | Callable[[], BinaryIO],
        *,
        length: int,
        etag: str,
        query: str | None = None,
        content_type: str | None = None,
    ) -> None:
        """PUT one object with its MD5 as ETag. `body` is bytes or opens a fresh reader."""

        def request(conn: swiftclient.Connection) -> None:
            if self.first_put_at is None:
                self.first_put_at = time.time()
            contents = body if isinstance(body, bytes) else body()
            conn.put_object(
                container,
                name,
                contents,
                content_length=length,
                etag=etag,
                query_string=query,
                content_type=content_type,
            )

        try:
            self._call(f"uploading {container}/{name}", request)
        except _NotFound:
            raise TransferFailed(f"uploading {container}/{name}: container vanished") from None

    def get_object(
        self,
        container: str,
        name: str,
        sink: Callable[[dict, Iterator[bytes]], Any],
        *,
        retry: RetryPolicy | None = None,
    ) -> Any:
        """GET one object and hand its headers and body chunks to `sink` (retried whole)."""

        def request(conn: swiftclient.Connection) -> Any:
            headers, body = conn.get_object(container, name, resp_chunk_size=READ_CHUNK)
            return sink(headers, body)

        try:
            return self._call(f"downloading {container}/{name}", request, retry=retry)
        except _NotFound:
            raise NothingToDownload(f"object {container}/{name} vanished during download") from None

    def slo_segments(self, container: str, name: str) -> list[Segment]:
        """The segments of a Static Large Object, from its manifest."""

        def request(conn: swiftclient.Connection) -> bytes:
            return conn.get_object(container, name, query_string="multipart-manifest=get")[1]

        try:
            raw = self._call(f"reading the manifest of {container}/{name}", request)
            entries = json.loads(raw)
        except _NotFound:
            raise NothingToDownload(f"object {container}/{name} vanished during download") from None
        except ValueError as exc:
            raise IntegrityError(f"{container}/{name}: unreadable large-object manifest") from exc
        return [_segment(entry) for entry in entries]

    def dlo_segments(self, manifest_header: str) -> list[Segment]:
        """The segments of a Dynamic Large Object: every object under its X-Object-Manifest."""
        seg_container, _, seg_prefix = manifest_header.partition("/")
        return [
            Segment(seg_container, o.name, o.size, o.etag)
            for o in self.list_objects(seg_container, seg_prefix)
        ]

    def delete_object(self, container: str, name: str) -> None:
        """Delete one object; one that is already gone is fine."""
        with contextlib.suppress(_NotFound):
            self._call(f"deleting {container}/{name}", lambda c: c.delete_object(container, name))


def _translate(what: str, exc: Exception) -> tuple[bool, PublisherError] | None:
    """Map a library error to (is it worth retrying, the publisher's error); None if not one."""
    if isinstance(exc, ClientException):
        status = exc.http_status
        if status is None:
            return True, StoreUnreachable(f"{what}: {exc.msg}")
        reason = f"{status} {exc.http_reason or ''}".strip()
        if what == "authenticating" and status in (401, 403):
            return False, AuthenticationFailed(f"{what}: Swift refused the credentials ({reason})")
        if status == 422:
            return False, IntegrityError(f"{what}: Swift says the data does not match its MD5")
        transient = status in (408, 429) or status >= 500
        return transient, TransferFailed(f"{what}: Swift answered {reason}")
    if isinstance(exc, ks_exceptions.Unauthorized):
        return False, AuthenticationFailed(f"{what}: Keystone refused the credentials (401)")
    if isinstance(exc, ks_exceptions.EndpointNotFound):
        return False, CredentialsError(f"{what}: the Keystone catalog has no object-store endpoint")
    if isinstance(exc, ks_exceptions.ConnectionError | requests.ConnectionError | ConnectionError):
        return True, StoreUnreachable(f"{what}: cannot connect ({_short(exc)})")
    if isinstance(exc, requests.Timeout | TimeoutError | ks_exceptions.RetriableConnectionFailure):
        return True, StoreUnreachable(f"{what}: timed out")
    if isinstance(exc, ks_exceptions.HttpError):
        transient = exc.http_status in (408, 429) or (exc.http_status or 0) >= 500
        return transient, TransferFailed(f"{what}: Keystone answered {exc.http_status}")
    network = (
        requests.RequestException,
        urllib3.exceptions.HTTPError,
        ks_exceptions.ClientException,
    )
    if isinstance(exc, network):
        return True, StoreUnreachable(f"{what}: {_short(exc)}")
    return None


def _short(exc: BaseException) -> str:
    # Connection errors nest several reprs; the innermost reason is the useful part.
    text = str(exc)
    for marker in ("Connection refused", "Name or service not known", "timed out", "reset"):
        if marker in text:
            return marker
    return text.splitlines()[0][:200] if text else type(exc).__name__


def _object_info(entry: dict) -> ObjectInfo:
    return ObjectInfo(
        name=entry["name"],
        size=int(entry.get("bytes", 0)),
        etag=str(entry.get("hash", "")).strip('"'),
        content_type=entry.get("content_type", ""),
        slo_etag=str(entry.get("slo_etag", "")).strip('"'),
    )


def _segment(entry: dict) -> Segment:
    container, _, name = entry["name"].lstrip("/").partition("/")
    return Segment(container, name, int(entry["bytes"]), str(entry["hash"]).strip('"'))
