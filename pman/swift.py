"""The only module in pman that talks to OpenStack Swift: objects in and out, for the data routes.

:class:`Store` holds pman's Swift credentials (read again from their file when it changes,
:class:`CredentialsFile`) and hands out :class:`SwiftSession` objects, one keep-alive
connection each (a session belongs to one thread). python-swiftclient,
keystoneauth1 and requests errors never leave this module: callers see
:class:`~pman.errors.StoreUnavailable` (Swift or its auth service cannot be reached,
refuses pman's credentials or fails), :class:`~pman.errors.StoreError` (an answer pman did
not expect), :class:`~pman.errors.PayloadTooLarge` or :class:`~pman.errors.ObjectNotFound`,
with the original exception as ``__cause__``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

import requests
import urllib3
from keystoneauth1 import exceptions as ks_exceptions
from swiftclient import client as swiftclient
from swiftclient.exceptions import ClientException
from swiftclient.utils import generate_temp_url

import swiftcreds
from pman.errors import (
    BadRequest,
    ObjectNotFound,
    PayloadTooLarge,
    PmanError,
    StoreError,
    StoreUnavailable,
    Unprocessable,
)
from swiftcreds import Credentials, swiftclient_options
from swiftcreds.reasons import short_reason
from swiftcreds.tempurl import TempUrl, has_dot_segment

log = logging.getLogger(__name__)

CHUNK = 1 << 20
# A couple of quick retries of connection errors and 5xx: a client of pman waits for the
# answer, so a Swift that stays down is reported within seconds rather than a minute.
RETRIES = 2
FIRST_BACKOFF = 0.25
MAX_BACKOFF = 2.0
# How often, at most, pman looks whether its credentials file has changed.
RECHECK_SECONDS = 2.0


@dataclass(frozen=True)
class Location:
    """Where a job's data lives: ``<container>/<prefix>``, one object per file, named
    ``<prefix>/<path>``."""

    container: str
    prefix: str

    @classmethod
    def parse(cls, path: str) -> Location:
        container, _, prefix = path.strip("/").partition("/")
        return cls(container, prefix.strip("/"))

    def object_name(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def __str__(self) -> str:
        return f"{self.container}/{self.prefix}" if self.prefix else self.container


class CredentialsFile:
    """Credentials as a file holds them, read again when the file changes.

    Kubernetes updates a mounted Secret by swapping symlinks to a new copy of its files, so
    a changed file is told by what ``stat`` says of the path (device, inode, size, mtime).
    A changed file that cannot be read or parsed is reported once and the credentials
    before it are kept; it is read again when it changes again.
    """

    def __init__(
        self, path: Path, credentials: Credentials, *, every: float = RECHECK_SECONDS
    ) -> None:
        self.path = path
        self.credentials = credentials
        self._every = every
        self._seen = _signature(path)
        self._next = time.monotonic() + every

    def changed(self) -> Credentials | None:
        """The file's new credentials if it has changed into other valid ones since the last
        look (at most one look every ``every`` seconds); None otherwise."""
        now = time.monotonic()
        if now < self._next:
            return None
        self._next = now + self._every
        seen = _signature(self.path)
        if seen == self._seen:
            return None
        self._seen = seen
        try:
            loaded = swiftcreds.load_file(self.path)
        except swiftcreds.CredentialsError as error:
            log.warning("%s; still using %s", error, self.credentials.describe())
            return None
        if loaded == self.credentials:
            return None
        log.info("Swift credentials changed in %s: now %s", self.path, loaded.describe())
        self.credentials = loaded
        return loaded


def _signature(path: Path) -> tuple[int, int, int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)


class Store:
    """One Swift account reached with pman's credentials; sessions for many threads.

    With ``source`` (the file the credentials came from), sessions opened after the file
    has changed use the new credentials; the file is looked at, at most, every ``recheck``
    seconds.
    """

    def __init__(
        self,
        credentials: Credentials,
        *,
        source: Path | None = None,
        recheck: float = RECHECK_SECONDS,
        timeout: float = 5.0,
    ) -> None:
        self._timeout = timeout
        self._file = CredentialsFile(source, credentials, every=recheck) if source else None
        self._lock = threading.Lock()
        self._use(credentials)

    def _use(self, credentials: Credentials) -> None:
        self.credentials = credentials
        self._options = swiftclient_options(credentials, timeout=self._timeout)
        # Swift v1 storage URL and token, shared so that each session need not authenticate.
        self._endpoint: tuple[str | None, str | None] = (None, None)

    @contextmanager
    def session(self) -> Iterator[SwiftSession]:
        """A session for the calling thread, closed on leaving the block."""
        with self._lock:
            if self._file and (changed := self._file.changed()):
                self._use(changed)
            credentials, options = self.credentials, self._options
            url, token = self._endpoint
        conn = swiftclient.Connection(
            **options,
            preauthurl=url,
            preauthtoken=token,
            retries=RETRIES,
            starting_backoff=FIRST_BACKOFF,
            max_backoff=MAX_BACKOFF,
        )
        try:
            yield SwiftSession(conn, credentials)
        finally:
            if conn.url and conn.token and not conn.session:
                with self._lock:
                    # Not a token of credentials replaced meanwhile.
                    if self.credentials is credentials:
                        self._endpoint = (conn.url, conn.token)
            conn.close()


class SwiftSession:
    """Object operations over one connection."""

    def __init__(self, conn: swiftclient.Connection, credentials: Credentials) -> None:
        self._conn = conn
        self._credentials = credentials

    def ensure_container(self, container: str) -> None:
        """Create the container unless it exists (PUT is idempotent)."""
        with self._translated(f"creating container {container}"):
            self._conn.put_container(container)

    def put_object(
        self,
        container: str,
        name: str,
        body: BinaryIO,
        *,
        length: int,
        etag: str | None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Upload ``length`` bytes read from ``body``; Swift checks them against ``etag``
        (their MD5) and refuses to store anything else. ``body`` must be seekable for a retry.
        """
        with self._translated(f"uploading {container}/{name}"):
            self._conn.put_object(
                container,
                name,
                body,
                content_length=length,
                etag=etag,
                chunk_size=CHUNK,
                headers=headers,
            )

    def list_objects(
        self, container: str, prefix: str, *, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """The listing entries (``name``, ``bytes``, ``hash``, and ``slo_etag`` for a Static
        Large Object) of the objects whose names start with ``prefix``: all of them, or the
        first ``limit``. :class:`ObjectNotFound` when the container does not exist."""
        with self._translated(f"listing {container}/{prefix}"):
            if limit is None:
                _, listing = self._conn.get_container(container, prefix=prefix, full_listing=True)
            else:
                _, listing = self._conn.get_container(container, prefix=prefix, limit=limit)
        return listing

    def put_small(self, container: str, name: str, data: bytes, *, content_type: str) -> None:
        """Upload a small object held in memory, checked against its MD5."""
        etag = hashlib.md5(data, usedforsecurity=False).hexdigest()
        with self._translated(f"uploading {container}/{name}"):
            self._conn.put_object(
                container,
                name,
                data,
                content_length=len(data),
                etag=etag,
                content_type=content_type,
            )

    def storage_url(self) -> str:
        """The account's storage URL (``.../v1/AUTH_<account>``), authenticating if needed."""
        with self._translated("authenticating"):
            url, _ = self._conn.get_auth() if not self._conn.url else (self._conn.url, None)
        return str(url).rstrip("/")

    def temp_url_keys(self, *, create: bool = False) -> list[str]:
        """The account's temp URL keys (``X-Account-Meta-Temp-URL-Key``, then ``-Key-2``);
        with ``create``, when it has none, a new random key set first. Never logged."""
        keys = self._temp_url_keys()
        if keys or not create:
            return keys
        with self._translated("setting the account's temp URL key"):
            self._conn.post_account({TEMP_URL_KEYS[0]: secrets.token_urlsafe(32)})
        log.info("the Swift account had no temp URL key: pman set one")
        # Read back: another pman replica may have set its own at the same moment.
        return self._temp_url_keys()

    def _temp_url_keys(self) -> list[str]:
        with self._translated("reading the account's temp URL key"):
            headers = self._conn.head_account()
        return [value for name in TEMP_URL_KEYS if (value := headers.get(name.lower()))]

    def signer(self, *, seconds: int) -> Signer:
        """Signs temporary URLs good for ``seconds`` from now, with the account's key (set
        when there is none)."""
        keys = self.temp_url_keys(create=True)
        if not keys:
            raise StoreError("the Swift account has no temp URL key")
        return Signer(self.storage_url(), keys[0], int(time.time()) + seconds)

    def slo_segments(self, container: str, name: str) -> list[dict[str, Any]]:
        """The segments of Static Large Object ``name`` (``name``: ``/container/object``,
        ``hash``, ``bytes``), from its manifest."""
        what = f"reading the manifest of {container}/{name}"
        with self._translated(what):
            _, body = self._conn.get_object(container, name, query_string="multipart-manifest=get")
        try:
            entries = json.loads(body)
            return [
                {"name": str(e["name"]), "hash": str(e["hash"]), "bytes": int(e["bytes"])}
                for e in entries
            ]
        except (ValueError, KeyError, TypeError):
            raise StoreError(f"{what}: not a Static Large Object's manifest") from None

    def put_large_object(
        self, container: str, name: str, segments: list[dict[str, Any]], *, etag: str
    ) -> None:
        """Write the manifest of a Static Large Object (Swift checks each segment's ETag
        and size, and the manifest's ETag, the MD5 of theirs)."""
        what = f"writing the large object {container}/{name}"
        if has_dot_segment(name) or any(has_dot_segment(s.get("path", "")) for s in segments):
            raise BadRequest(f"{what}: a name with a '.' or '..' segment would name another")
        body = json.dumps(segments).encode()
        try:
            with self._translated(what):
                self._conn.put_object(
                    container,
                    name,
                    body,
                    content_length=len(body),
                    etag=etag,
                    query_string="multipart-manifest=put",
                )
        except StoreError as error:
            cause = error.__cause__
            if isinstance(cause, ClientException) and cause.http_status == 400:
                # Swift checked the segments: its answer names the one that does not match.
                content = cause.http_response_content or b""
                if isinstance(content, bytes):
                    content = content.decode("utf-8", "replace")
                reason = " ".join(content.split())[:300] or "400 Bad Request"
                raise Unprocessable(f"{what}: Swift refused the manifest: {reason}") from None
            raise

    def delete_object(self, container: str, name: str) -> None:
        """Delete an object; one that is already gone is fine."""
        try:
            with self._translated(f"deleting {container}/{name}"):
                self._conn.delete_object(container, name)
        except ObjectNotFound:
            pass

    def object_sizes(self, container: str, prefix: str) -> dict[str, int]:
        """The size of every object under ``prefix``, by name, from the container listing
        (a few requests for thousands of objects; a large object's whole size)."""
        return {item["name"]: int(item["bytes"]) for item in self.list_objects(container, prefix)}

    def read_object(self, container: str, name: str, *, limit: int) -> bytes:
        """A small object's content; :class:`StoreError` when it holds more than ``limit``."""
        headers, chunks = self.stream_object(container, name)
        if int(headers.get("content-length") or 0) > limit:
            raise StoreError(f"{container}/{name} is larger than {limit} bytes")
        data = bytearray()
        for chunk in chunks:
            data += chunk
            if len(data) > limit:
                raise StoreError(f"{container}/{name} is larger than {limit} bytes")
        return bytes(data)

    def stream_object(self, container: str, name: str) -> tuple[dict[str, str], Iterator[bytes]]:
        """An object's headers and its content in chunks of at most 1 MiB."""
        what = f"downloading {container}/{name}"
        with self._translated(what):
            headers, body = self._conn.get_object(container, name, resp_chunk_size=CHUNK)
        return headers, self._chunks(body, what)

    def _chunks(self, body: Any, what: str) -> Iterator[bytes]:
        with self._translated(what):
            yield from body

    @contextmanager
    def _translated(self, what: str) -> Iterator[None]:
        try:
            yield
        except PmanError:
            raise
        except Exception as error:
            translated = translate(what, error, self._credentials)
            if translated is None:
                raise
            raise translated from error


TEMP_URL_KEYS = ("X-Account-Meta-Temp-URL-Key", "X-Account-Meta-Temp-URL-Key-2")
"""Where an account keeps its temp URL keys: pman signs with the first; Swift also takes
signatures of the second (so a key can be changed without breaking running jobs' URLs)."""


@dataclass(frozen=True)
class Signer:
    """Signs Swift temporary URLs of one account with its key, all expiring at ``expires``
    (UNIX time): ``method`` on one object, or (``prefix``) on every object whose name starts
    with ``name``. Pure: the key was read before."""

    storage_url: str
    key: str = field(repr=False)
    expires: int

    def signature(self, method: str, container: str, name: str, *, prefix: bool = False) -> str:
        """The ``temp_url_sig`` (SHA-256, the digest Swift accepts by default)."""
        path = f"{self.account_path}/{container}/{name}"
        signed = generate_temp_url(
            path, self.expires, self.key, method, absolute=True, prefix=prefix
        )
        # generate_temp_url answers "<path>?temp_url_sig=<hex>&temp_url_expires=...": its
        # path and prefix unquoted, so the URL itself is built by `url`.
        return signed[len(path) + len("?temp_url_sig=") :].partition("&")[0]

    def url(self, method: str, container: str, name: str, *, prefix: bool = False) -> str:
        """The temporary URL itself."""
        signature = self.signature(method, container, name, prefix=prefix)
        signed = TempUrl(method, self.storage_url, container, name, prefix, self.expires, signature)
        return signed.url()

    @property
    def account_path(self) -> str:
        """``/v1/<account>``: the path Swift signs, even behind a proxy that adds one."""
        path = urlsplit(self.storage_url).path
        at = path.find("/v1/")
        return path[at:] if at >= 0 else path


def translate(what: str, error: Exception, credentials: Credentials) -> PmanError | None:
    """pman's error for a library's exception; None for one that is not Swift's doing."""
    if isinstance(error, ClientException):
        return _http_error(what, error, credentials)
    if isinstance(error, ks_exceptions.Unauthorized):
        return StoreUnavailable(f"{what}: Keystone refused {credentials.describe()}")
    if isinstance(error, ks_exceptions.EndpointNotFound):
        return StoreUnavailable(f"{what}: the Keystone catalog has no object-store endpoint")
    if isinstance(error, requests.Timeout | TimeoutError):
        return StoreUnavailable(f"{what}: Swift did not answer in time")
    network = (
        ks_exceptions.ClientException,
        requests.RequestException,
        urllib3.exceptions.HTTPError,
        ConnectionError,
    )
    if isinstance(error, network):
        return StoreUnavailable(f"{what}: cannot reach Swift ({short_reason(error)})")
    return None


def _http_error(what: str, error: ClientException, credentials: Credentials) -> PmanError:
    status = error.http_status
    if status is None:
        return StoreUnavailable(f"{what}: cannot reach Swift ({error.msg})")
    reason = f"{status} {error.http_reason or ''}".strip()
    if status == 404:
        return ObjectNotFound(f"{what}: not found")
    if status == 401:
        return StoreUnavailable(f"{what}: Swift refused {credentials.describe()} ({reason})")
    if status == 413:
        return PayloadTooLarge(f"{what}: Swift refuses an object this large ({reason})")
    if status == 422:
        return StoreError(f"{what}: Swift says the data does not match its checksum")
    if status >= 500:
        return StoreUnavailable(f"{what}: Swift is failing ({reason})")
    return StoreError(f"{what}: Swift answered {reason}")
