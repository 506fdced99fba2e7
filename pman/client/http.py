"""A client of a pman server's REST API: jobs, and their data through the data routes.

The one module of the ``pman`` command that talks HTTP. Every failure leaves as a
:class:`ClientError` whose message is one line fit for a terminal and whose ``exit_code``
the command returns: :class:`Refused` (pman answered 4xx) or :class:`Unavailable` (pman
could not be reached, did not answer in time, or answered 5xx).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO
from urllib.parse import quote, urljoin, urlparse

import requests

from pman.client.errors import BadUrl, ClientError, Refused, Unavailable
from swiftcreds.reasons import short_reason

DEFAULT_URL = "http://127.0.0.1:5010/api/v1/"
# (connect, read) seconds. Transfers wait longer: pman answers an upload only once every
# file is in Swift.
TIMEOUT = (10.0, 30.0)
TRANSFER_TIMEOUT = (10.0, 600.0)
# How often ``push`` asks about an upload pman finishes in the background.
POLL_SECONDS = 1.0
STREAM_CHUNK = 1 << 20


class PmanClient:
    """One pman server, reached at ``url`` (its ``/api/v1/``) with an optional token."""

    def __init__(self, url: str, *, token: str | None = None) -> None:
        self.url = api_url(url)
        self._session = requests.Session()
        self._session.headers["Accept"] = "application/json"
        if token:
            self._session.headers["Authorization"] = f"Bearer {token}"

    def close(self) -> None:
        self._session.close()

    def info(self) -> dict[str, Any]:
        """``GET /api/v1/``: what the server is."""
        return self._json("GET", "")

    def submit(self, request: dict[str, Any]) -> dict[str, Any]:
        """Submit a job request; the new job."""
        return self._json("POST", "", json=request)

    def status(self, jid: str) -> dict[str, Any]:
        """The job's status and logs."""
        return self._json("GET", f"{_segment(jid)}/")

    def jobs(self) -> list[dict[str, Any]]:
        """Every job (without logs)."""
        return self._json("GET", "_jobs/")["jobs"]

    def delete(self, jid: str) -> None:
        """Delete the job (its pods stop)."""
        self._request("DELETE", f"{_segment(jid)}/")

    def push(
        self,
        jid: str,
        body: BinaryIO | Iterable[bytes],
        *,
        content_type: str,
        poll_every: float = POLL_SECONDS,
    ) -> dict[str, Any]:
        """Upload a job's input: a file (sent with its length) or chunks (sent chunked).
        Returns once every file is in Swift: an upload pman answers 202 (it goes on in the
        background) is followed through ``GET`` of the same path until it ends."""
        path = f"_data/{_segment(jid)}/input/"
        headers = {"Content-Type": content_type}
        response = self._request("POST", path, data=body, headers=headers, timeout=TRANSFER_TIMEOUT)
        result = _decoded(response, f"{self.url}{path}")
        if response.status_code != 202:
            return result
        while result.get("state") == "uploading":
            time.sleep(poll_every)
            status = self._json("GET", path)
            if status.get("id") != result.get("id"):
                raise Unavailable(
                    f"another upload to {result.get('input_dir')} began before this one "
                    "ended; its outcome is unknown"
                )
            result = status
        if result.get("state") != "done":
            raise Unavailable(f"storing the input in Swift failed: {result.get('message')}")
        return result

    @contextmanager
    def pull(self, jid: str, *, fmt: str) -> Iterator[BinaryIO]:
        """The job's published output as an archive stream (``tar``, ``tgz`` or ``zip``)."""
        path = f"_data/{_segment(jid)}/output/"
        response = self._request(
            "GET", path, params={"format": fmt}, stream=True, timeout=TRANSFER_TIMEOUT
        )
        try:
            yield _ResponseReader(response)
        finally:
            response.close()

    def _json(self, method: str, path: str, **options: Any) -> Any:
        return _decoded(self._request(method, path, **options), f"{self.url}{path}")

    def _request(self, method: str, path: str, **options: Any) -> requests.Response:
        options.setdefault("timeout", TIMEOUT)
        url = urljoin(self.url, path)
        try:
            response = self._session.request(method, url, **options)
        except requests.Timeout:
            raise Unavailable(f"pman at {self.url} did not answer in time") from None
        except requests.RequestException as error:
            raise Unavailable(f"cannot reach pman at {self.url}: {short_reason(error)}") from None
        if response.status_code >= 400:
            raise _error(response)
        return response


class _ResponseReader:
    """A streamed response body as a file to ``read()``, with transport errors translated."""

    def __init__(self, response: requests.Response) -> None:
        self._chunks = response.iter_content(STREAM_CHUNK)
        self._buffer = b""
        self._offset = 0

    def read(self, size: int = STREAM_CHUNK) -> bytes:
        size = STREAM_CHUNK if size < 0 else size
        while len(self._buffer) - self._offset < size:
            chunk = self._next_chunk()
            if not chunk:
                break
            self._buffer = self._buffer[self._offset :] + chunk
            self._offset = 0
        data = self._buffer[self._offset : self._offset + size]
        self._offset += len(data)
        return data

    def _next_chunk(self) -> bytes:
        try:
            return next(self._chunks, b"")
        except requests.RequestException as error:
            raise Unavailable(f"the download was cut short: {short_reason(error)}") from None


def api_url(url: str) -> str:
    """The API root: ``url`` with a trailing ``/``; a bare server URL gets ``/api/v1/``."""
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise BadUrl(f"{url!r} is not an http(s) URL of a pman server")
    if parsed.path in ("", "/"):
        return url.rstrip("/") + "/api/v1/"
    return url if url.endswith("/") else url + "/"


def _segment(jid: str) -> str:
    return quote(jid, safe="")


def _decoded(response: requests.Response, url: str) -> Any:
    try:
        return response.json()
    except ValueError:
        raise Unavailable(f"{url} did not answer with JSON") from None


def _error(response: requests.Response) -> ClientError:
    message = _message(response)
    text = f"{response.status_code} {message}" if message else str(response.status_code)
    if response.status_code < 500:
        return Refused(text, status=response.status_code)
    return Unavailable(text)


def _message(response: requests.Response) -> str:
    try:
        message = response.json().get("message", "")
    except (ValueError, AttributeError):
        return response.text.strip().splitlines()[0][:200] if response.text.strip() else ""
    if isinstance(message, dict):
        return "; ".join(f"{field}: {text}" for field, text in message.items())
    return str(message)
