"""Swift temporary URLs, as pman hands them to job pods and the publisher uses them: parsed,
matched to the requests they allow, described without their signature. Pure: no I/O
(pman signs them in :mod:`pman.swift`).

A temporary URL (Swift's ``tempurl`` middleware) is a signature of one method, one path and
an expiry time, made with a key only the account's owner can read: ``.../v1/AUTH_x/c/o?
temp_url_sig=S&temp_url_expires=T`` allows that method on object ``c/o`` until ``T``; with
``&temp_url_prefix=P`` (and a path ending in ``P``), on every object of ``c`` whose name
starts with ``P``. ``HEAD`` is allowed by a ``GET`` or ``PUT`` signature. A temporary URL
never allows a container listing, nor a query of its own: Swift replaces the query of every
request it authorizes by the signature's, so ``multipart-manifest=put`` (the manifest of a
Static Large Object) cannot be sent through one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

METHODS = ("GET", "PUT", "DELETE")
"""The methods a publisher is given temporary URLs for (``HEAD`` comes with GET and PUT)."""
API_VERSION = "v1"
MAX_EXPIRES_DIGITS = 12
"""A UNIX time in seconds has 10 digits until the year 2286."""


class NotATempUrl(ValueError):
    """The text is no temporary URL; the message says why (never quoting the signature)."""


@dataclass(frozen=True)
class TempUrl:
    """What one temporary URL allows: ``method`` on the object ``name`` of ``container``, or
    on every object whose name starts with ``name`` when ``prefix``, until ``expires``."""

    method: str
    storage_url: str
    """``scheme://host[:port][/path]/v1/<account>``: where the account's objects are."""
    container: str
    name: str
    prefix: bool
    expires: int
    signature: str = field(repr=False)
    path: str = ""
    """What the URL's path names after the container: the object, or for a prefix URL the
    place it points at (its prefix, or a folder under it): the destination of an upload."""

    @classmethod
    def parse(cls, text: str, method: str) -> TempUrl:
        """The temporary URL ``text``, allowing ``method``; :class:`NotATempUrl` else."""
        method = method.upper()
        if method not in METHODS:
            raise NotATempUrl(f"{method!r}: expected one of {', '.join(METHODS)}")
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise NotATempUrl("a temporary URL starts with http:// or https://")
        query = parse_qs(parts.query, keep_blank_values=True)
        signature = _single(query, "temp_url_sig")
        expires = _single(query, "temp_url_expires")
        prefix = query.get("temp_url_prefix")
        if not signature or not expires:
            raise NotATempUrl("a temporary URL has temp_url_sig and temp_url_expires")
        if not (expires.isascii() and expires.isdigit()) or len(expires) > MAX_EXPIRES_DIGITS:
            raise NotATempUrl("temp_url_expires must be a UNIX time (seconds)")
        segments = parts.path.split("/")
        if API_VERSION not in segments[:-2]:
            raise NotATempUrl("a temporary URL's path is .../v1/<account>/<container>/...")
        at = segments.index(API_VERSION)
        account, container = segments[at + 1], unquote(segments[at + 2])
        rest = unquote("/".join(segments[at + 3 :]))
        if not account or not container:
            raise NotATempUrl("a temporary URL names an account and a container")
        if "/" in container or has_dot_segment(container):
            raise NotATempUrl("a container name holds no '/' and is not '.' or '..'")
        if has_dot_segment(rest) or (prefix is not None and has_dot_segment(prefix[0])):
            raise NotATempUrl(
                "a path with a '.' or '..' segment: HTTP clients send it to another object"
            )
        storage = f"{parts.scheme}://{parts.netloc}{'/'.join(segments[: at + 2])}"
        if prefix is None:
            if not rest:
                raise NotATempUrl("a temporary URL without temp_url_prefix names an object")
            return cls(method, storage, container, rest, False, int(expires), signature, rest)
        if len(prefix) != 1 or not rest.startswith(prefix[0]):
            raise NotATempUrl("the path of a prefix temporary URL starts with its prefix")
        return cls(method, storage, container, prefix[0], True, int(expires), signature, rest)

    def covers(self, container: str, name: str) -> bool:
        """Whether this URL's signature is good for object ``name`` of ``container``."""
        if container != self.container:
            return False
        return name.startswith(self.name) if self.prefix else name == self.name

    def query(self) -> str:
        """The query string that carries the signature."""
        fields = {"temp_url_sig": self.signature, "temp_url_expires": str(self.expires)}
        if self.prefix:
            fields["temp_url_prefix"] = self.name
        return urlencode(fields, quote_via=quote)

    def url(self, name: str | None = None) -> str:
        """The URL of object ``name`` (this URL's own object or prefix by default)."""
        name = self.name if name is None else name
        path = f"{quote(self.container, safe='')}/{quote(name, safe='/')}"
        return f"{self.storage_url}/{path}?{self.query()}"

    def expired(self, now: float | None = None) -> bool:
        return (time.time() if now is None else now) >= self.expires

    def describe(self) -> str:
        """``PUT under c/p/ until 2026-01-02T03:04:05Z``: what it allows (no signature)."""
        where = "under" if self.prefix else "of"
        return f"{self.method} {where} {self.container}/{self.name} until {expiry(self.expires)}"


def exact(method: str, storage_url: str, container: str, name: str, **fields: object) -> TempUrl:
    """The temporary URL of one object, from a stage-in plan's fields (``signature``,
    ``expires``)."""
    signature, expires = fields["signature"], fields["expires"]
    if not isinstance(signature, str) or not signature:
        raise NotATempUrl(f"object {name!r} has no signature")
    if not isinstance(expires, int) or isinstance(expires, bool):
        raise NotATempUrl(f"object {name!r} has no expiry time")
    return TempUrl(method, storage_url, container, name, False, expires, signature, name)


def has_dot_segment(path: str) -> bool:
    """Whether ``path`` has a ``.`` or ``..`` segment. Swift takes such a name as it is, but
    HTTP clients (urllib3, and so python-swiftclient and requests) remove dot segments from a
    URL before sending it: a request for ``out/../x`` would reach ``x``."""
    return any(part in (".", "..") for part in path.split("/"))


def expiry(timestamp: int) -> str:
    """A UNIX time as ISO-8601 UTC, to the second."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _single(query: dict[str, list[str]], key: str) -> str:
    values = query.get(key) or [""]
    if len(values) != 1:
        raise NotATempUrl(f"a temporary URL has one {key}")
    return values[0]
