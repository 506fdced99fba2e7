"""Swift accounts whose temporary URLs tests sign: the session's tempauth account and the
Keystone one, each with pman's own Store (which sets the account's key when it has none)
and a plain python-swiftclient connection for looking at what Swift holds.

`Account.signer(seconds)` is pman's Signer for URLs good that long; `Account.url(method,
container, name, prefix=...)` signs one; `Account.connection()` talks with credentials.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests
from swiftclient import client as swiftclient

import swiftcreds
from pman.swift import Signer, Store
from swiftcreds import Credentials


@dataclass
class Account:
    """One Swift account reached with credentials (``kind``: tempauth or keystone)."""

    kind: str
    credentials: Credentials
    credentials_file: Path | None = None

    def __post_init__(self) -> None:
        self.store = Store(self.credentials, timeout=30)

    def connection(self) -> swiftclient.Connection:
        return swiftclient.Connection(
            **swiftcreds.swiftclient_options(self.credentials, timeout=30), retries=0
        )

    def signer(self, seconds: int = 600) -> Signer:
        with self.store.session() as swift:
            return swift.signer(seconds=seconds)

    def url(self, method: str, container: str, name: str, *, prefix: bool = False, **kw) -> str:
        return self.signer(**kw).url(method, container, name, prefix=prefix)

    @property
    def storage_url(self) -> str:
        with self.store.session() as swift:
            return swift.storage_url()


def tempauth_account(swift_server: Any) -> Account:
    return Account("tempauth", swiftcreds.from_environment(swift_server.environment()))


def keystone_account(keystone_swift: Any, directory: Path) -> Account:
    path = keystone_swift.write_credentials(directory / "keystone-credentials.cfg")
    return Account("keystone", swiftcreds.load_file(path), path)


def at(url: str, name: str) -> str:
    """The prefix URL ``url`` addressing object ``name`` of its container instead (the
    signature is the prefix's: it covers any name under it)."""
    base, _, query = url.partition("?")
    return f"{_container_url(base)}/{quote(name, safe='/')}?{query}"


def _container_url(object_url: str) -> str:
    """``.../v1/<account>/<container>`` of a URL under it."""
    head, _, rest = object_url.partition("/v1/")
    account, container = rest.split("/")[:2]
    return f"{head}/v1/{account}/{container}"


def send(method: str, url: str, **kwargs: Any) -> requests.Response:
    """One raw request (no retries, no redirects)."""
    return requests.request(method, url, timeout=30, allow_redirects=False, **kwargs)
