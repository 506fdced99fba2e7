"""pman's own errors: what callers see instead of library exceptions.

Each error carries the HTTP status the REST API answers with, so the Flask layer
turns any of them into ``{"message": ...}`` without knowing where it came from.
"""

from __future__ import annotations


class PmanError(Exception):
    """Base class: an error with an HTTP status and a message for the client."""

    status = 500

    def __init__(self, message: str | dict[str, str]) -> None:
        super().__init__(message if isinstance(message, str) else "; ".join(message.values()))
        self.message = message


class BadRequest(PmanError):
    """The request is malformed; ``message`` may map each bad field to what is wrong."""

    status = 400


class Unauthorized(PmanError):
    """The request lacks the configured bearer token."""

    status = 401


class Forbidden(PmanError):
    """Kubernetes refused the request for lack of a permission."""

    status = 403


class JobNotFound(PmanError):
    """No job with this jid exists."""

    status = 404


class JobExists(PmanError):
    """A job with this jid already exists."""

    status = 409


class RunEnding(JobExists):
    """The jid's earlier run was deleted but its pods are still ending."""


class UnsupportedMediaType(PmanError):
    """The request body is not declared as JSON."""

    status = 415


class ClusterUnavailable(PmanError):
    """The Kubernetes API cannot be reached or answered with a server error."""

    status = 503


class ClusterUnreachable(ClusterUnavailable):
    """No connection to the Kubernetes API could be made, or it did not answer in time."""


class NotReady(PmanError):
    """pman cannot serve jobs now (``/readyz``): the message says only what is not ready."""

    status = 503


class ClusterError(PmanError):
    """Kubernetes answered with an error pman did not expect."""

    status = 502


class WatchExpired(PmanError):
    """A watch's resourceVersion is too old (410 Gone): list again."""

    status = 503


class SettingsError(ValueError):
    """One or more settings are invalid; the message names each of them."""


class PayloadTooLarge(PmanError):
    """An upload is larger than pman or Swift accepts."""

    status = 413


class InsufficientStorage(PmanError):
    """pman's temporary disk has no room left for an upload being checked."""

    status = 507


class DataNotFound(PmanError):
    """No such data: a job that does not exist and has no published output."""

    status = 404


class OutputNotReady(PmanError):
    """The job exists but its output is not published (yet)."""

    status = 409


class WrongStorageMode(PmanError):
    """The request needs another storage mode than the one pman runs in (STORAGE_TYPE)."""

    status = 409


class StoreUnavailable(PmanError):
    """No Swift is configured, or it cannot be reached, refuses pman or fails."""

    status = 503


class ObjectNotFound(PmanError):
    """Swift answered 404: the object or its container does not exist."""

    status = 404


class StoreError(PmanError):
    """Swift answered with an error pman did not expect, or holds unusable data."""

    status = 502


class Unprocessable(PmanError):
    """A request pman understood but cannot carry out as asked (Swift refused its data)."""

    status = 422
