"""The ``pman`` client commands' errors: each carries the exit code its command returns
(the table is in :data:`pman.client.parser.EXIT_CODES`)."""

from __future__ import annotations


class ClientError(Exception):
    """A failure of the client; ``exit_code`` is what the command exits with."""

    exit_code = 4


class Refused(ClientError):
    """pman refused the request (4xx): bad fields, no such job, token missing..."""

    exit_code = 3

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


class BadUrl(ClientError):
    """The pman URL given is not an http(s) URL."""

    exit_code = 2


class Unavailable(ClientError):
    """pman could not be reached, timed out, or failed (5xx)."""

    exit_code = 4


class UsageError(Exception):
    """Arguments that cannot make a request."""

    exit_code = 2


class LocalFilesError(Exception):
    """A local file or directory cannot be used as asked; the message names it."""

    exit_code = 5
