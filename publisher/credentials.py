"""The publisher's Swift credentials: which ones to use, with errors in its own terms.

Parsing lives in :mod:`swiftcreds` (shared with pman; the forms are documented in
publisher/README.rst). This module adds the publisher's policy, the default file where a
job pod mounts the Secret, and turns parse failures into :class:`CredentialsError`
(exit code 3).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import swiftcreds
from publisher.errors import CredentialsError
from swiftcreds import Credentials, keystone_plugin

__all__ = ["DEFAULT_PATH", "Credentials", "from_environment", "keystone_plugin", "load_file"]

DEFAULT_PATH = Path("/etc/swift/swift-credentials.cfg")


def resolve(path: str | None, env: Mapping[str, str]) -> Credentials:
    """Pick credentials: `path` if given, else ST_*, else OS_*, else the default file."""
    if path:
        return load_file(Path(path))
    found = from_environment(env)
    if found is not None:
        return found
    if DEFAULT_PATH.exists():
        return load_file(DEFAULT_PATH)
    raise CredentialsError(
        "no Swift credentials: pass --credentials FILE, set ST_AUTH/ST_USER/ST_KEY or "
        f"OS_AUTH_URL and friends, or provide {DEFAULT_PATH}"
    )


def load_file(path: Path) -> Credentials:
    """Parse a swift-credentials.cfg (INI) file."""
    with _publisher_errors():
        return swiftcreds.load_file(path)


def from_environment(env: Mapping[str, str]) -> Credentials | None:
    """ST_AUTH/ST_USER/ST_KEY (v1), or the OS_* variables of python-swiftclient users."""
    with _publisher_errors():
        return swiftcreds.from_environment(env)


@contextmanager
def _publisher_errors() -> Iterator[None]:
    try:
        yield
    except swiftcreds.CredentialsError as error:
        raise CredentialsError(str(error)) from error
