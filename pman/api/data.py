"""pman's data routes: a job's input into Swift, and its published output out of it.

- ``POST /api/v1/_data/<jid>/input/`` takes a tar stream (plain or compressed), a zip file or
  multipart/form-data files and writes one object per file under the job's ``input_dir``:
  the one recorded on its Job, or ``key-<jid>/incoming`` for a job not submitted yet.
- ``GET /api/v1/_data/<jid>/output/`` streams the files of the job's published output
  (``output_dir``), and the publisher's manifest, as a tar, tar.gz or zip file. A manifest
  that does not match what Swift holds is a 502 before anything is sent; an object that
  changes while it streams cuts the archive short (and is logged).

``_`` cannot occur in a jid, so these paths never hide a job. Uploads are checked whole
before anything is written to Swift (:mod:`pman.staging`); outputs are read back as the
publisher's manifest lists them (:mod:`pman.outputs`).

In the volume storage modes (``STORAGE_TYPE=kubernetes_pvc`` or ``host``) both routes answer
409 naming the mode: the client keeps each job's data in its storeBase, writing the input
before it submits and reading the output once the job has finished, and pman, which does
not mount the storeBase itself, has nothing to move.
"""

from __future__ import annotations

import errno
import json
import logging
import shutil
import tempfile
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO

from flask import Blueprint, Response, jsonify, request
from werkzeug.wsgi import get_input_stream

from pman.api.common import known_jid, pman
from pman.archive import (
    CHUNK,
    ArchiveError,
    Entry,
    UnsafeEntry,
    multipart_boundary,
    multipart_entries,
    tar_entries,
    zip_entries,
)
from pman.errors import (
    BadRequest,
    DataNotFound,
    InsufficientStorage,
    JobNotFound,
    ObjectNotFound,
    OutputNotReady,
    PayloadTooLarge,
    PmanError,
    StoreUnavailable,
    UnsupportedMediaType,
    WrongStorageMode,
)
from pman.jobspec import INPUT_ANNOTATION, OUTPUT_ANNOTATION, run_of
from pman.models import is_jid
from pman.outputs import output_chunks, published_files
from pman.pod import MANIFEST, MAX_MANIFEST_BYTES
from pman.staging import LimitedBody, stage
from pman.status import job_state
from pman.swift import Location, Store
from pman.uploads import read_status, store_upload

log = logging.getLogger(__name__)
blueprint = Blueprint("data", __name__)

TAR_TYPES = {
    "application/x-tar",
    "application/tar",
    "application/gzip",
    "application/x-gzip",
    "application/x-gtar",
    "application/x-compressed-tar",
    "application/x-bzip2",
    "application/x-xz",
}
ZIP_TYPES = {"application/zip", "application/x-zip-compressed"}
MULTIPART = "multipart/form-data"
OUTPUT_FORMATS = {
    "tar": ("application/x-tar", "tar"),
    "tgz": ("application/gzip", "tar.gz"),
    "tar.gz": ("application/gzip", "tar.gz"),
    "zip": ("application/zip", "zip"),
}
NO_SWIFT = (
    "pman has no Swift credentials, so its data routes are off: set SWIFT_CREDENTIALS_FILE "
    "(a swift-credentials.cfg), or ST_AUTH/ST_USER/ST_KEY, or the OS_* variables"
)

Obj = dict[str, Any]


@blueprint.before_request
def _swift_storage_only() -> None:
    settings = pman().settings
    if not settings.volume_storage:
        return
    if settings.volume_name:
        storebase = f"the PersistentVolumeClaim {settings.volume_name!r}"
    else:
        storebase = f"the directory {str(settings.storebase)!r}"
    raise WrongStorageMode(
        f"pman runs with STORAGE_TYPE={settings.storage_type}: a job's data is in the "
        f"storeBase ({storebase}), which the client writes before it submits the job and "
        "reads once the job has finished; the data routes move data in and out of Swift, "
        "with STORAGE_TYPE=swift only"
    )


def _store() -> Store:
    store = pman().store
    if store is None:
        raise StoreUnavailable(NO_SWIFT)
    return store


def _find_job(jid: str) -> Obj | None:
    """The job's Job object, or None when pman has no job ``jid``."""
    try:
        return pman().jobs.job(jid)
    except JobNotFound:
        return None


def _not_published(jid: str, job: Obj | None, location: Location) -> PmanError:
    """Why there is no output to download, as the error to answer with."""
    if job is None:
        return DataNotFound(f"no job {jid!r}, and no published output in {location}")
    state = job_state(job, pman().jobs.pods(jid))
    if state.finished:
        return OutputNotReady(
            f"job {jid!r} has no published output in {location}: it {state.status} "
            f"({state.message})"
        )
    return OutputNotReady(
        f"the output of job {jid!r} is not published yet: it is {state.status} "
        f"({state.phase}); try again once it has finished"
    )


# -- upload ----------------------------------------------------------------------------------
@blueprint.post("/api/v1/_data/<jid>/input/")
def upload_input(jid: str) -> Any:
    if not is_jid(jid):
        raise BadRequest(f"{jid!r} is not a job id: jids are DNS-1123 labels")
    kind = _upload_kind(request.mimetype)
    store = _store()
    location = _input_location(jid)
    limit = pman().settings.max_data_bytes
    body = LimitedBody(_input_stream(limit), limit)
    with _spooling(kind):
        # Closed by store_upload once the files are in Swift, maybe after the answer.
        spool = tempfile.TemporaryFile(prefix="pman-upload-")  # noqa: SIM115
        try:
            staged = stage(_entries(kind, body), spool, location, limit=limit)
        except (ArchiveError, UnsafeEntry) as error:
            spool.close()
            raise BadRequest(str(error)) from None
        except BaseException:
            spool.close()
            raise
    wait = pman().settings.upload_wait_seconds
    going_on = store_upload(store, location, staged, spool, jid=jid, wait=wait)
    if going_on is not None:
        log.info("storing %d files in %s for job %s, in the background", len(staged), location, jid)
        return jsonify(going_on), 202, {"Location": request.path}
    size = sum(item.size for item in staged)
    log.info("uploaded %d files (%d bytes) to %s for job %s", len(staged), size, location, jid)
    return jsonify(
        {"jid": jid, "input_dir": str(location), "files": len(staged), "bytes": size}
    ), 201


@blueprint.get("/api/v1/_data/<jid>/input/")
def upload_status(jid: str) -> Any:
    known_jid(jid)
    store = _store()
    location = _input_location(jid)
    status = read_status(store, location)
    if status is None:
        raise DataNotFound(
            f"no upload to {location} is going on or was finished in the background "
            "(an upload answered 201 was complete then)"
        )
    return jsonify(status)


def _input_location(jid: str) -> Location:
    """The job's input_dir as recorded on its Job, else where a job without one looks."""
    job = _find_job(jid)
    recorded = _annotations(job).get(INPUT_ANNOTATION) if job else None
    return Location.parse(recorded or f"key-{jid}/incoming")


@contextmanager
def _spooling(kind: str) -> Iterator[None]:
    """507 saying what is full, and how much room an upload needs, when the temporary disk
    fills up (an upload waits there while it is checked)."""
    try:
        yield
    except OSError as error:
        if error.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        directory = tempfile.gettempdir()
        free = shutil.disk_usage(directory).free
        need = "up to the size of its files"
        if kind == "zip":
            declared = request.content_length
            twice = f"about {2 * declared} bytes, " if declared else ""
            need = f"{twice}twice its size (the zip file is kept whole beside its files)"
        raise InsufficientStorage(
            f"pman's temporary disk ({directory}, TMPDIR) is full ({free} bytes free): an "
            f"upload waits there while it is checked, and this one needs {need}; try again "
            "later, or ask the operator for more room there"
        ) from error


def _upload_kind(mimetype: str) -> str:
    if mimetype in TAR_TYPES:
        return "tar"
    if mimetype in ZIP_TYPES:
        return "zip"
    if mimetype == MULTIPART:
        return "multipart"
    raise UnsupportedMediaType(
        "send the input as application/x-tar (plain or compressed, also application/gzip), "
        "application/zip or multipart/form-data"
    )


def _input_stream(limit: int) -> BinaryIO:
    declared = request.content_length
    if declared is not None and declared > limit:
        raise PayloadTooLarge(f"the request body is larger than {limit} bytes")
    # The limit is enforced while reading (LimitedBody), which also covers chunked bodies.
    return get_input_stream(request.environ, max_content_length=None)


def _entries(kind: str, body: LimitedBody) -> Iterator[Entry]:
    if kind == "tar":
        return tar_entries(body)  # type: ignore[arg-type]
    if kind == "zip":
        return _zip_file_entries(body)
    boundary = multipart_boundary(request.content_type or "")
    return multipart_entries(body.read, boundary)


def _zip_file_entries(body: LimitedBody) -> Iterator[Entry]:
    # A zip file's directory is at its end: spool the body (within the limit) to read it.
    with tempfile.TemporaryFile(prefix="pman-zip-") as archive:
        shutil.copyfileobj(body, archive, CHUNK)  # type: ignore[misc]
        archive.seek(0)
        yield from zip_entries(archive)


# -- download --------------------------------------------------------------------------------
@blueprint.get("/api/v1/_data/<jid>/output/")
def download_output(jid: str) -> Any:
    known_jid(jid)
    mimetype, extension = _output_format()
    store = _store()
    job = _find_job(jid)
    recorded = _annotations(job).get(OUTPUT_ANNOTATION) if job else None
    location = Location.parse(recorded or f"key-{jid}/outgoing")
    with store.session() as swift:
        try:
            manifest = swift.read_object(
                location.container, location.object_name(MANIFEST), limit=MAX_MANIFEST_BYTES
            )
        except ObjectNotFound:
            raise _not_published(jid, job, location) from None
    files = published_files(manifest, location)
    if job is not None and not _written_by(manifest, run_of(job)):
        # An earlier run's output: this run has not published yet (or it failed to).
        raise _not_published(jid, job, location)
    chunks = output_chunks(store, location, files, manifest, extension=extension, jid=jid)
    # The first chunk is made here, so that what fails before it (a manifest that does not
    # match Swift, Swift failing) is still answered with its status and a JSON message.
    first = next(chunks, b"")
    disposition = f'attachment; filename="{jid}-output.{extension}"'
    return Response(
        _resumed(first, chunks), mimetype=mimetype, headers={"Content-Disposition": disposition}
    )


def _resumed(first: bytes, rest: Generator[bytes, None, None]) -> Iterator[bytes]:
    """``first``, then the rest; the rest is closed (its Swift session with it) however the
    answer ends, a client that went away included."""
    try:
        yield first
        yield from rest
    finally:
        rest.close()


def _output_format() -> tuple[str, str]:
    chosen = request.args.get("format")
    if chosen is None:
        offered = ["application/x-tar", "application/gzip", "application/zip"]
        best = request.accept_mimetypes.best_match(offered) or offered[0]
        chosen = {"application/gzip": "tgz", "application/zip": "zip"}.get(best, "tar")
    if chosen not in OUTPUT_FORMATS:
        raise BadRequest(f"format {chosen!r} is not one of tar, tgz, zip")
    return OUTPUT_FORMATS[chosen]


def _written_by(manifest: bytes, run: str | None) -> bool:
    """Whether the manifest is the one run ``run`` wrote (any, for a Job without a run id)."""
    return run is None or json.loads(manifest).get("run") == run


def _annotations(job: Obj | None) -> dict[str, str]:
    return ((job or {}).get("metadata") or {}).get("annotations") or {}
