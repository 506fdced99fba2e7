"""The publisher's own errors, each with the process exit code it maps to.

Library errors (python-swiftclient, keystoneauth1, the Kubernetes client) are translated
into these in the one module that talks to each system; the CLI prints the message (never
a secret) and exits with `exit_code`.
"""

from __future__ import annotations


class PublisherError(Exception):
    """Base class: a failure with a message fit for one line of output."""

    exit_code = 1


class UsageError(PublisherError):
    """Bad command-line arguments (also argparse's own code)."""

    exit_code = 2


class CredentialsError(PublisherError):
    """No usable credentials: missing file, malformed file, missing field."""

    exit_code = 3


class AuthenticationFailed(PublisherError):
    """The auth service refused the credentials (wrong password, key or secret)."""

    exit_code = 4


class StoreUnreachable(PublisherError):
    """The auth service or Swift could not be reached (connection refused, DNS, timeout)."""

    exit_code = 5


class ContainerNotFound(PublisherError):
    """The Swift container to download from does not exist."""

    exit_code = 6


class NothingToDownload(PublisherError):
    """The prefix holds no object (and empty input was not allowed), or an object vanished."""

    exit_code = 7


class IntegrityError(PublisherError):
    """Data did not match its checksum (download or upload)."""

    exit_code = 8


class UnsafeName(PublisherError):
    """An object name would land outside the destination directory, or clashes with another."""

    exit_code = 9


class TransferFailed(PublisherError):
    """Swift kept failing after every retry, or refused a request outright."""

    exit_code = 10


class ClusterError(PublisherError):
    """The Kubernetes API could not be reached, or refused the watch."""

    exit_code = 11


class WaitFailed(PublisherError):
    """The watched pod or container went away, or the wait deadline passed."""

    exit_code = 12


class LocalIOError(PublisherError):
    """Reading or writing the local directory failed (disk full, permissions)."""

    exit_code = 13


class InputRefused(PublisherError):
    """The stage-in plan refuses the job's input, and says why (e.g. a ChRIS link to the
    job's own output)."""

    exit_code = 14


class TempUrlRefused(PublisherError):
    """A temporary URL expired, or Swift (or pman, for a large object's manifest) refused its
    signature: the key it was signed with has changed, or it is not for this request."""

    exit_code = 15


class Interrupted(BaseException):
    """SIGINT or SIGTERM: stop now. A BaseException so that no handler swallows it."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by signal {signum}")
        self.exit_code = 128 + signum


class GraceExpired(Interrupted):
    """The pod's termination grace period ran out before the publish finished."""

    def __init__(self, message: str) -> None:
        super().__init__(15)  # ended by SIGTERM, as far as the exit code goes
        self.args = (message,)
