"""An accepted upload written to Swift, answered at once when it is quick, else finished in
the background with a status every pman process can read.

Storing many small files takes Swift a few milliseconds of work each, so tens of thousands
take minutes, longer than pman's clients wait for an answer (100 s). :func:`store_upload`
waits a while for the upload (``PMAN_UPLOAD_WAIT``); an upload still going on then
is answered 202 while it goes on, and its status is kept in Swift (container
:data:`STATUS_CONTAINER`, one object per upload location) so that a client polling
``GET /api/v1/_data/<jid>/input/`` learns the outcome from any pman process or replica.
The status is rewritten every few seconds while the upload runs; one that stops changing
(its pman process ended) is reported as failed.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from datetime import UTC, datetime
from io import BytesIO
from typing import Any, BinaryIO, Literal

from pydantic import BaseModel, Field

from pman.errors import ObjectNotFound, PmanError
from pman.staging import Staged, upload
from pman.swift import Location, Store

log = logging.getLogger(__name__)

# How often a background upload rewrites its status, and when one that has not been
# rewritten counts as abandoned.
REFRESH_SECONDS = 5.0
ABANDONED_AFTER = 60.0
STATUS_CONTAINER = "pman-uploads"
# Statuses expire from Swift after a week (X-Delete-After).
KEEP_SECONDS = 7 * 86400
MAX_STATUS_BYTES = 64 * 1024


class UploadStatus(BaseModel):
    """GET /api/v1/_data/<jid>/input/ (and POST's 202): an upload finished in the background."""

    jid: str
    input_dir: str = Field(description="<swift container>/<prefix> the files go to.")
    id: str = Field(description="This upload's id (several uploads to one job replace it).")
    state: Literal["uploading", "done", "failed"]
    files: int = Field(description="Files (objects) in the upload.")
    bytes: int = Field(description="Their total size.")
    uploaded: int = Field(description="Files in Swift so far.")
    message: str = Field(description="Why it failed; empty otherwise.")
    updated: str = Field(description="When pman last wrote this status (ISO 8601, UTC).")


def store_upload(
    store: Store,
    location: Location,
    staged: list[Staged],
    spool: BinaryIO,
    *,
    jid: str,
    wait: float,
) -> dict[str, Any] | None:
    """Write the staged files to Swift and close ``spool``. None once they are all there,
    within ``wait`` seconds; otherwise the status of the upload, which goes on in the
    background. Errors of an upload finished in time are raised."""
    job = _Upload(store, location, staged, spool, jid=jid)
    job.start()
    if job.finished.wait(wait) or not job.go_background():
        job.finished.wait()
        job.raise_failure()
        return None
    return job.status()


def read_status(store: Store, location: Location) -> dict[str, Any] | None:
    """The status of the last upload pman finished in the background to ``location``."""
    with store.session() as swift:
        try:
            data = swift.read_object(
                STATUS_CONTAINER, _status_name(location), limit=MAX_STATUS_BYTES
            )
        except ObjectNotFound:
            return None
    status = json.loads(data)
    updated = datetime.fromisoformat(status["updated"])
    stale = (datetime.now(UTC) - updated).total_seconds() > ABANDONED_AFTER
    if status["state"] == "uploading" and stale:
        status["state"] = "failed"
        status["message"] = (
            f"the pman process storing it stopped (no news since {status['updated']}); "
            "push the input again"
        )
    return status


def _status_name(location: Location) -> str:
    return f"{location}.json"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class _Upload:
    """One upload on a thread of its own; switched to the background at most once."""

    def __init__(
        self,
        store: Store,
        location: Location,
        staged: list[Staged],
        spool: BinaryIO,
        *,
        jid: str,
    ) -> None:
        self.store, self.location, self.staged, self.spool = store, location, staged, spool
        self.jid = jid
        self.total_bytes = sum(item.size for item in staged)
        self.id = uuid.uuid4().hex
        self.finished = threading.Event()
        self.uploaded = 0
        self.failure: BaseException | None = None
        self._background = False
        self._lock = threading.Lock()
        self._last_write = 0.0

    def start(self) -> None:
        threading.Thread(target=self._run, name=f"pman-upload-{self.jid}", daemon=True).start()

    def go_background(self) -> bool:
        """Record the upload as going on; False when that cannot be recorded (then the
        caller waits for the end) or when it has just finished."""
        with self._lock:
            if self.finished.is_set():
                return False
            try:
                self._write(self.status())
            except PmanError as error:
                log.warning("cannot record the upload to %s in Swift: %s", self.location, error)
                return False
            self._background = True
            return True

    def raise_failure(self) -> None:
        if self.failure is not None:
            raise self.failure

    def status(self, state: str = "uploading", message: str = "") -> dict[str, Any]:
        return UploadStatus(
            jid=self.jid,
            input_dir=str(self.location),
            id=self.id,
            state=state,  # type: ignore[arg-type]
            files=len(self.staged),
            bytes=self.total_bytes,
            uploaded=self.uploaded,
            message=message,
            updated=_now(),
        ).model_dump()

    def _run(self) -> None:
        try:
            upload(self.store, self.location, self.staged, self.spool.fileno(), done=self._one)
        except BaseException as error:  # reported to the client, whichever way it waits
            self.failure = error
        finally:
            self.spool.close()
        with self._lock:
            self.finished.set()
            if self._background:
                self._finish()

    def _one(self) -> None:
        with self._lock:
            self.uploaded += 1
            due = self._background and time.monotonic() - self._last_write > REFRESH_SECONDS
            if due:
                self._last_write = time.monotonic()
                status = self.status()
        if due:  # written outside the lock: the other upload threads do not wait for Swift
            self._write_quietly(status)

    def _finish(self) -> None:
        if self.failure is None:
            log.info("uploaded %d files to %s for job %s", self.uploaded, self.location, self.jid)
            self._write_quietly(self.status("done"))
            return
        message = (
            self.failure.message if isinstance(self.failure, PmanError) else repr(self.failure)
        )
        log.warning("the upload to %s for job %s failed: %s", self.location, self.jid, message)
        self._write_quietly(self.status("failed", str(message)))

    def _write_quietly(self, status: dict[str, Any]) -> None:
        try:
            self._write(status)
        except PmanError as error:
            log.warning("cannot record the upload to %s in Swift: %s", self.location, error)

    def _write(self, status: dict[str, Any]) -> None:
        self._last_write = time.monotonic()
        data = json.dumps(status).encode()
        headers = {"X-Delete-After": str(KEEP_SECONDS), "Content-Type": "application/json"}
        with self.store.session() as swift:

            def put() -> None:
                swift.put_object(
                    STATUS_CONTAINER,
                    _status_name(self.location),
                    BytesIO(data),
                    length=len(data),
                    etag=None,
                    headers=headers,
                )

            try:
                put()
            except ObjectNotFound:  # the first upload pman sends to the background
                swift.ensure_container(STATUS_CONTAINER)
                put()
