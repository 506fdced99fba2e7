"""The one module that talks to OpenStack Swift (and to its auth service).

`SwiftStore` authenticates once (Swift v1 through python-swiftclient, or Keystone v3
through keystoneauth1), then talks to the storage URL itself over HTTP/1.1, one keep-alive
connection per thread (`http.client`): a response body is read into a buffer the thread
reuses and a file is sent with sendfile(2), so the publisher spends little CPU per request
and per byte on a machine it shares with everything else. It owns the retry policy:
connection errors, 5xx, 408, 429, and Swift's 498 (rate limited) and 499 (the proxy gave up
on a slow client) are retried with exponential backoff and jitter; an expired token (401) is
renewed once. `TempUrlStore` does the same with no credentials at all: each request is
signed by one of the temporary URLs it was given (pman's job pods hold only those). Library
and socket errors never leave this module: callers see the errors of `publisher.errors`,
with the original as __cause__.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import random
import select
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO
from urllib.parse import quote, urlencode, urlsplit

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
    TempUrlRefused,
    TransferFailed,
    UsageError,
)
from swiftcreds.reasons import short_reason
from swiftcreds.tempurl import TempUrl, expiry

log = logging.getLogger(__name__)

READ_CHUNK = 256 << 10
"""Bytes read from a response at a time, into a buffer each thread reuses. Small enough to
stay in the CPU cache while it is received, hashed and written: with 1 MiB the same work
costs about a third more CPU."""


RETRIED_STATUSES = frozenset({408, 429, 498, 499})
"""Besides 5xx: request timeout, too many requests, and Swift's own "498 Rate Limited"
(its ratelimit middleware) and "499 Client Disconnect" (the proxy timed out reading)."""


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry a transient failure."""

    attempts: int = 8
    """Tries per request, the first included: with the delays below, 13 to 26 s of waiting
    in all, besides each try's own time (a connection timeout, say)."""
    first_delay: float = 0.25
    max_delay: float = 10.0

    def delays(self) -> Iterator[float]:
        delay = self.first_delay
        for _ in range(self.attempts - 1):
            # Jitter keeps many threads from retrying in lockstep.
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


class _HttpStatus(Exception):
    """Internal: Swift answered with an error status."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}".strip())
        self.status, self.reason = status, reason


class _ServiceStatus(Exception):
    """Internal: pman's large-object service answered with an error status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status} {message}")
        self.status, self.message = status, message


class _Unreachable(Exception):
    """Internal: the connection failed (refused, reset, timed out, closed mid-body)."""


_NETWORK_ERRORS = (OSError, http.client.HTTPException)


class _Connection:
    """One keep-alive HTTP/1.1 connection to the storage URL's server, used by one thread."""

    def __init__(self, storage_url: str, *, timeout: float) -> None:
        parts = urlsplit(storage_url)
        self.url = storage_url
        self.base = parts.path.rstrip("/")
        self.tls = parts.scheme == "https"
        if self.tls:
            self.http: http.client.HTTPConnection = http.client.HTTPSConnection(
                parts.hostname or "",
                parts.port,
                timeout=timeout,
                context=ssl.create_default_context(),
                blocksize=READ_CHUNK,
            )
        else:
            self.http = http.client.HTTPConnection(
                parts.hostname or "", parts.port, timeout=timeout, blocksize=READ_CHUNK
            )
        self.buffer = memoryview(bytearray(READ_CHUNK))

    def close(self) -> None:
        self.http.close()

    def path(self, container: str, name: str | None = None, query: str | None = None) -> str:
        path = f"{self.base}/{quote(container, safe='')}"
        if name is not None:
            path += "/" + quote(name, safe="/")
        return f"{path}?{query}" if query else path

    def request(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        body: bytes | BinaryIO | None = None,
    ) -> http.client.HTTPResponse:
        """Send one request; the response comes back with its status and headers read."""
        self._drop_if_stale()
        try:
            self.http.putrequest(method, path, skip_accept_encoding=True)
            for key, value in headers.items():
                self.http.putheader(key, value)
            if body is None or isinstance(body, bytes):
                self.http.endheaders(body)
            else:
                self.http.endheaders()
                self._send_file(body)
            return self.http.getresponse()
        except _NETWORK_ERRORS as exc:
            self.close()
            raise _Unreachable(_describe(exc)) from exc
        except BaseException:
            self.close()  # half a request went out: this connection cannot be reused
            raise

    def _send_file(self, body: BinaryIO) -> None:
        send_to = getattr(body, "send_to", None)
        if send_to is not None and not self.tls:
            send_to(self.http.sock)  # sendfile(2): the kernel copies file to socket
            return
        self.http.send(body)  # read in READ_CHUNK blocks (the connection's blocksize)

    def _drop_if_stale(self) -> None:
        # A keep-alive connection the server closed while idle reads as ready (EOF):
        # reconnect now rather than fail the request and wait for a retry.
        sock = self.http.sock
        if sock is None:
            return
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        if poller.poll(0):
            self.close()

    def finish(self, response: http.client.HTTPResponse) -> bytes:
        """Read a (small) response body whole; raise for an error status."""
        try:
            body = response.read()
        except _NETWORK_ERRORS as exc:
            self.close()
            raise _Unreachable(_describe(exc)) from exc
        if response.status >= 300:
            raise _HttpStatus(response.status, response.reason)
        return body

    def body(self, response: http.client.HTTPResponse) -> Iterator[memoryview]:
        """The body in chunks; each chunk is only valid until the next one is asked for."""
        expected, received = response.length, 0
        while True:
            try:
                count = response.readinto(self.buffer)
            except _NETWORK_ERRORS as exc:
                self.close()
                raise _Unreachable(_describe(exc)) from exc
            if not count:
                break
            received += count
            yield self.buffer[:count]
        if expected is not None and received != expected:
            self.close()
            raise _Unreachable(f"connection closed after {received} of {expected} bytes")


class SwiftStore:
    """A Swift account reached with one set of credentials, safe to use from many threads."""

    def __init__(
        self,
        credentials: Credentials,
        *,
        retry: RetryPolicy | None = None,
        timeout: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        listing_page: int = 10_000,
    ) -> None:
        self.credentials = credentials
        self.retry = retry or RetryPolicy()
        self.timeout = timeout
        self.listing_page = listing_page
        """Names per listing request (Swift's own maximum is 10,000)."""
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
                # Quietly: an auth service that stays unreachable ends in one line.
                self._endpoint = self._with_retries(
                    "authenticating", self._fetch_endpoint, quiet=True
                )
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

    def _connection(self, url: str) -> _Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.url != url:
            if conn is not None:
                conn.close()
            conn = self._local.conn = _Connection(url, timeout=self.timeout)
        return conn

    def _drop_connection(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # -- the retry loop ----------------------------------------------------------------
    def _with_retries(
        self,
        what: str,
        action: Callable[[], Any],
        *,
        retry: RetryPolicy | None = None,
        quiet: bool = False,
    ) -> Any:
        """`action()`, retried on transient errors; each retry is logged (with -v if quiet)."""
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
                log.log(
                    logging.DEBUG if quiet else logging.WARNING,
                    "%s; retrying in %.1f s",
                    error,
                    delay,
                )
                self._drop_connection()
                self._sleep(delay)

    def _call(
        self,
        what: str,
        method: str,
        container: str,
        name: str | None,
        request: Callable[[_Connection, str, dict[str, str]], Any],
        *,
        query: str | None = None,
        retry: RetryPolicy | None = None,
    ) -> Any:
        """Run one Swift request with retries, renewing the token once on 401.

        `request` gets this thread's connection, the path of `container`/`name` (with
        `query`) and the headers every request carries; `method` is what it sends.
        """
        renewed = False
        while True:
            endpoint = self._current_endpoint()

            def attempt(endpoint: tuple[str, str] = endpoint) -> Any:
                url, token = endpoint
                conn = self._connection(url)
                try:
                    return request(conn, conn.path(container, name, query), {"X-Auth-Token": token})
                except _HttpStatus as exc:
                    if exc.status == 404:
                        raise _NotFound(what) from exc
                    if exc.status == 401:
                        raise _AuthExpired(what) from exc
                    raise

            try:
                return self._with_retries(what, attempt, retry=retry)
            except _AuthExpired as exc:
                if renewed:
                    raise AuthenticationFailed(f"{what}: Swift refused the token (401)") from exc
                renewed = True
                self._renew(endpoint)

    # -- what a store can do -----------------------------------------------------------
    can_list = True
    """Whether the store can list a container (a temporary URL cannot)."""
    writes_large_objects = True
    """Whether the store can write the manifest of a Static Large Object."""

    def allows(self, method: str, container: str, name: str) -> bool:
        """Whether `method` may be sent for object `name` of `container` (always, with
        credentials)."""
        return True

    def add(self, urls: Iterable[TempUrl]) -> None:
        """Allow what temporary URLs allow: with credentials, nothing more."""

    # -- operations --------------------------------------------------------------------
    def ensure_container(self, container: str) -> None:
        """Create the container when it does not exist (PUT is idempotent)."""

        def request(conn: _Connection, path: str, headers: dict[str, str]) -> None:
            headers["Content-Length"] = "0"
            conn.finish(conn.request("PUT", path, headers))

        self._call(f"creating container {container}", "PUT", container, None, request)

    def list_objects(self, container: str, prefix: str = "") -> list[ObjectInfo]:
        """Every object under `prefix`; raises ContainerNotFound."""
        found: list[ObjectInfo] = []
        marker = ""
        while True:
            page = self._listing_page(container, prefix, marker)
            found.extend(_object_info(entry) for entry in page if "name" in entry)
            if len(page) < self.listing_page:
                return found
            marker = page[-1]["name"]

    def _listing_page(self, container: str, prefix: str, marker: str) -> list[dict]:
        query = {"format": "json", "limit": str(self.listing_page)}
        if prefix:
            query["prefix"] = prefix
        if marker:
            query["marker"] = marker

        def request(conn: _Connection, path: str, headers: dict[str, str]) -> list[dict]:
            body = conn.finish(conn.request("GET", path, headers))
            return json.loads(body) if body else []

        what = f"listing {container}/{prefix}"
        try:
            return self._call(what, "GET", container, None, request, query=urlencode(query))
        except _NotFound:
            raise ContainerNotFound(f"container {container!r} does not exist") from None
        except ValueError as exc:
            raise TransferFailed(f"listing {container}/{prefix}: unreadable listing") from exc

    def head_object(self, container: str, name: str) -> ObjectInfo | None:
        """What Swift holds as object `name` (a Static Large Object with its ``slo_etag``),
        or None when there is none."""

        def request(conn: _Connection, path: str, headers: dict[str, str]) -> ObjectInfo:
            response = conn.request("HEAD", path, headers)
            conn.finish(response)
            received = {k.lower(): v for k, v in response.getheaders()}
            etag = received.get("etag", "").strip('"')
            large = received.get("x-static-large-object", "").lower() == "true"
            size = int(received.get("content-length") or 0)
            return ObjectInfo(name, size, "" if large else etag, slo_etag=etag if large else "")

        try:
            return self._call(f"looking up {container}/{name}", "HEAD", container, name, request)
        except _NotFound:
            return None

    def put_object(
        self,
        container: str,
        name: str,
        body: bytes | Callable[[], BinaryIO],
        *,
        length: int,
        etag: str,
        content_type: str | None = None,
    ) -> None:
        """PUT one object with its MD5 as ETag. `body` is bytes or opens a fresh reader.

        A reader with a ``send_to(socket)`` method is sent with it (sendfile) over plain
        HTTP; any other reader is read in blocks.
        """
        self._put(container, name, body, length=length, etag=etag, content_type=content_type)

    def _put(
        self,
        container: str,
        name: str,
        body: bytes | Callable[[], BinaryIO],
        *,
        length: int,
        etag: str,
        content_type: str | None = None,
        query: str | None = None,
    ) -> None:
        def request(conn: _Connection, path: str, headers: dict[str, str]) -> None:
            if self.first_put_at is None:
                self.first_put_at = time.time()
            headers |= {"Content-Length": str(length), "ETag": etag}
            if content_type is not None:
                headers["Content-Type"] = content_type
            contents = body if isinstance(body, bytes) else body()
            conn.finish(conn.request("PUT", path, headers, contents))

        what = f"uploading {container}/{name}"
        try:
            self._call(what, "PUT", container, name, request, query=query)
        except _NotFound:
            raise TransferFailed(f"uploading {container}/{name}: container vanished") from None

    def put_large_object(
        self, container: str, name: str, segments: list[dict[str, Any]], *, etag: str
    ) -> None:
        """Write the manifest of a Static Large Object whose segments are uploaded
        (``path``, ``etag``, ``size_bytes`` each); `etag` is the MD5 of their ETags."""
        body = json.dumps(segments).encode()
        self._put(
            container, name, body, length=len(body), etag=etag, query="multipart-manifest=put"
        )

    def get_object(
        self,
        container: str,
        name: str,
        sink: Callable[[dict, Iterator[memoryview]], Any],
        *,
        retry: RetryPolicy | None = None,
    ) -> Any:
        """GET one object and hand its headers and body chunks to `sink` (retried whole).

        Header names are lower-case. Each chunk is a view of a buffer that is reused for the
        next chunk: `sink` must use (hash, write) a chunk before asking for the next one.
        """

        def request(conn: _Connection, path: str, headers: dict[str, str]) -> Any:
            response = conn.request("GET", path, headers)
            if response.status >= 300:
                conn.finish(response)
            received = {k.lower(): v for k, v in response.getheaders()}
            try:
                return sink(received, conn.body(response))
            finally:
                if not response.isclosed():
                    conn.close()  # some of the body is still on the wire

        what = f"downloading {container}/{name}"
        try:
            return self._call(what, "GET", container, name, request, retry=retry)
        except _NotFound:
            raise NothingToDownload(f"object {container}/{name} vanished during download") from None

    def slo_segments(self, container: str, name: str) -> list[Segment]:
        """The segments of a Static Large Object, from its manifest."""

        def request(conn: _Connection, path: str, headers: dict[str, str]) -> bytes:
            return conn.finish(conn.request("GET", path, headers))

        what = f"reading the manifest of {container}/{name}"
        try:
            raw = self._call(what, "GET", container, name, request, query="multipart-manifest=get")
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

    def read_small(self, container: str, name: str, *, limit: int) -> bytes:
        """A small object's whole body (a manifest); TransferFailed beyond ``limit`` bytes."""

        def sink(headers: dict, chunks: Iterator[memoryview]) -> bytes:
            body = bytearray()
            for chunk in chunks:
                body += chunk
                if len(body) > limit:
                    raise TransferFailed(f"{container}/{name} is larger than {limit} bytes")
            return bytes(body)

        return self.get_object(container, name, sink)

    def delete_object(
        self, container: str, name: str, *, segments: Sequence[Segment] | None = None
    ) -> None:
        """Delete one object; a Static Large Object, whose `segments` are given, with its
        segments. One that is already gone is fine."""
        query = "multipart-manifest=delete" if segments is not None else None
        self._delete(container, name, query=query)

    def _delete(self, container: str, name: str, *, query: str | None = None) -> None:
        def request(conn: _Connection, path: str, headers: dict[str, str]) -> None:
            conn.finish(conn.request("DELETE", path, headers))

        what = f"deleting {container}/{name}"
        with contextlib.suppress(_NotFound):
            self._call(what, "DELETE", container, name, request, query=query)


class TempUrlStore(SwiftStore):
    """Objects of a Swift account reached through temporary URLs only: no credentials, no
    token, nothing the URLs do not allow (see :mod:`publisher.tempurl`).

    Each request is signed by a URL that allows its method on its object (``HEAD`` by a
    ``GET`` or ``PUT`` one); with none, it is not sent (:class:`UsageError`, naming what is
    missing). Swift answers 401 to a signature it does not accept: that is
    :class:`TempUrlRefused`, which says whether the URL had expired. A temporary URL cannot
    list or create a container, nor carry a query: so objects are looked up one by one
    (``HEAD``), the containers must exist (pman creates them), a Static Large Object is
    deleted segment by segment, and its manifest is written by pman's large-object service
    (``large_objects``, which checks the same signatures), or, without one, large files
    are uploaded as single objects.
    """

    can_list = False

    def __init__(
        self,
        urls: Iterable[TempUrl] = (),
        *,
        large_objects: str | None = None,
        retry: RetryPolicy | None = None,
        timeout: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(None, retry=retry, timeout=timeout, sleep=sleep)  # type: ignore[arg-type]
        self.large_objects = large_objects
        self._exact: dict[tuple[str, str, str], TempUrl] = {}
        self._prefixes: list[TempUrl] = []
        self.add(urls)

    @property
    def writes_large_objects(self) -> bool:  # type: ignore[override]
        return self.large_objects is not None

    def add(self, urls: Iterable[TempUrl]) -> None:
        """Allow what `urls` allow, too."""
        for url in urls:
            if url.prefix:
                self._prefixes.append(url)
            else:
                self._exact[(url.method, url.container, url.name)] = url

    def authenticate(self) -> None:
        """Nothing to do: every request carries its own signature."""

    def allows(self, method: str, container: str, name: str) -> bool:
        return self._signed(method, container, name) is not None

    def _signed(self, method: str, container: str, name: str) -> TempUrl | None:
        methods = ("GET", "PUT") if method == "HEAD" else (method,)
        for signed in methods:
            if found := self._exact.get((signed, container, name)):
                return found
        for url in self._prefixes:
            if url.method in methods and url.covers(container, name):
                return url
        return None

    def _call(
        self,
        what: str,
        method: str,
        container: str,
        name: str | None,
        request: Callable[[_Connection, str, dict[str, str]], Any],
        *,
        query: str | None = None,
        retry: RetryPolicy | None = None,
    ) -> Any:
        if name is None or query is not None:
            reached = f"container {container}" if name is None else f"?{query}"
            raise UsageError(f"{what}: a temporary URL cannot reach {reached}")
        url = self._signed(method, container, name)
        if url is None:
            raise UsageError(f"{what}: no temporary URL given allows {method} of it")

        def attempt() -> Any:
            conn = self._connection(url.storage_url)
            try:
                return request(conn, conn.path(container, name, url.query()), {})
            except _HttpStatus as exc:
                if exc.status == 404:
                    raise _NotFound(what) from exc
                if exc.status == 401:
                    raise _refused(what, url) from exc
                raise

        return self._with_retries(what, attempt, retry=retry)

    def ensure_container(self, container: str) -> None:
        """Nothing: a temporary URL cannot create a container; pman creates the job's."""

    def list_objects(self, container: str, prefix: str = "") -> list[ObjectInfo]:
        raise UsageError(
            f"a temporary URL cannot list container {container!r}: the objects to download "
            "must be named (a stage-in plan, --plan)"
        )

    def slo_segments(self, container: str, name: str) -> list[Segment]:
        raise UsageError(
            f"{container}/{name} is a Static Large Object, and a temporary URL cannot read its "
            "manifest: the stage-in plan must list its segments"
        )

    def delete_object(
        self, container: str, name: str, *, segments: Sequence[Segment] | None = None
    ) -> None:
        """Delete one object, then (a Static Large Object) each of its `segments`: Swift
        drops ``multipart-manifest=delete`` from a temporary URL's request."""
        self._delete(container, name)
        for segment in segments or ():
            self._delete(segment.container, segment.name)

    def put_large_object(
        self, container: str, name: str, segments: list[dict[str, Any]], *, etag: str
    ) -> None:
        """Have pman's large-object service write the manifest: it checks that the URLs
        given allow PUT of the object and of every segment, then writes it with its own
        credentials (Swift would store the manifest sent through a temporary URL as a plain
        object)."""
        what = f"writing the large object {container}/{name}"
        if self.large_objects is None:
            raise UsageError(f"{what}: no large-object service was given")
        target = self._signed("PUT", container, name)
        if target is None:
            raise UsageError(f"{what}: no temporary URL given allows PUT of it")
        covering: dict[str, None] = {}
        for entry in segments:
            seg_container, _, seg_name = str(entry["path"]).lstrip("/").partition("/")
            url = self._signed("PUT", seg_container, seg_name)
            if url is None:
                raise UsageError(f"{what}: no temporary URL given allows PUT of its segments")
            covering[url.url()] = None
        body = {
            "object": target.url(name),
            "segments": list(covering),
            "manifest": segments,
            "etag": etag,
        }
        service = self.large_objects

        def attempt() -> None:
            response = requests.post(service, json=body, timeout=self.timeout)
            if response.status_code == 201:
                return
            try:
                message = str(response.json().get("message", ""))[:300]
            except ValueError:
                message = response.reason or ""
            if response.status_code == 403:
                raise TempUrlRefused(f"{what}: pman refused the temporary URLs: {message}")
            if response.status_code == 422:
                raise IntegrityError(f"{what}: {message}")
            raise _ServiceStatus(response.status_code, message)

        self._with_retries(what, attempt)


def _refused(what: str, url: TempUrl) -> TempUrlRefused:
    if url.expired():
        return TempUrlRefused(
            f"{what}: the temporary URL ({url.describe()}) expired at {expiry(url.expires)}: "
            "ask for new ones (a job: submit it again)"
        )
    return TempUrlRefused(
        f"{what}: Swift refused the temporary URL ({url.describe()}) with 401: its "
        "signature is not good for this request, or the key it was signed with has changed"
    )


def _translate(what: str, exc: Exception) -> tuple[bool, PublisherError] | None:
    """Map a library error to (is it worth retrying, the publisher's error); None if not one."""
    if isinstance(exc, _ServiceStatus):
        return _transient(exc.status), TransferFailed(
            f"{what}: pman answered {exc.status}: {exc.message}".rstrip(": ")
        )
    if isinstance(exc, _HttpStatus):
        return _status_error(what, exc.status, f"{exc.status} {exc.reason}".strip())
    if isinstance(exc, _Unreachable):
        return True, StoreUnreachable(f"{what}: {exc}")
    if isinstance(exc, ClientException):
        status = exc.http_status
        if status is None:
            return True, StoreUnreachable(f"{what}: {exc.msg}")
        return _status_error(what, status, f"{status} {exc.http_reason or ''}".strip())
    if isinstance(exc, ks_exceptions.Unauthorized):
        return False, AuthenticationFailed(f"{what}: Keystone refused the credentials (401)")
    if isinstance(exc, ks_exceptions.EndpointNotFound):
        return False, CredentialsError(f"{what}: the Keystone catalog has no object-store endpoint")
    if isinstance(exc, ks_exceptions.ConnectionError | requests.ConnectionError | ConnectionError):
        return True, StoreUnreachable(f"{what}: cannot connect ({short_reason(exc)})")
    if isinstance(exc, requests.Timeout | TimeoutError | ks_exceptions.RetriableConnectionFailure):
        return True, StoreUnreachable(f"{what}: timed out")
    if isinstance(exc, ks_exceptions.HttpError):
        return _transient(exc.http_status or 0), TransferFailed(
            f"{what}: Keystone answered {exc.http_status}"
        )
    network = (
        requests.RequestException,
        urllib3.exceptions.HTTPError,
        ks_exceptions.ClientException,
    )
    if isinstance(exc, network):
        return True, StoreUnreachable(f"{what}: {short_reason(exc)}")
    return None


def _status_error(what: str, status: int, reason: str) -> tuple[bool, PublisherError]:
    if what == "authenticating" and status in (401, 403):
        return False, AuthenticationFailed(f"{what}: Swift refused the credentials ({reason})")
    if status == 422:
        return False, IntegrityError(f"{what}: Swift says the data does not match its MD5")
    return _transient(status), TransferFailed(f"{what}: Swift answered {reason}")


def _transient(status: int) -> bool:
    return status in RETRIED_STATUSES or status >= 500


def _describe(exc: BaseException) -> str:
    """A socket or HTTP error as a short phrase."""
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "cannot connect (Connection refused)"
    if isinstance(exc, http.client.RemoteDisconnected | ConnectionResetError | BrokenPipeError):
        return "connection closed by the server"
    if isinstance(exc, http.client.IncompleteRead):
        return "connection closed before the whole body arrived"
    return short_reason(exc)


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
