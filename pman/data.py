"""pman's data routes: a job's input into Swift, and its published output out of it.

- ``POST /api/v1/_data/<jid>/input/`` takes a tar stream (plain or compressed), a zip file or
  multipart/form-data files and writes one object per file under the job's ``input_dir``:
  the one recorded on its Job, or ``key-<jid>/incoming`` for a job not submitted yet.
- ``GET /api/v1/_data/<jid>/output/`` streams the files of the job's published output
  (``output_dir``), and the publisher's manifest, as a tar, tar.gz or zip file.

``_`` cannot occur in a jid, so these paths never hide a job. An upload is checked whole
before anything is written to Swift: while its entries are read, each file is copied to
one temporary spool file with its MD5, and only once every entry was accepted are the
files uploaded, under their final names, with the MD5 as ETag. Swift has no rename, so
uploading under temporary names first would mean copying every object a second time on
the server; the spool costs local disk up to ``PMAN_MAX_DATA_SIZE`` instead, and a refused,
oversized or interrupted upload leaves Swift untouched (no existing object is overwritten
by part of an archive that is then refused).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import queue
import shutil
import tempfile
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any, BinaryIO

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from werkzeug.wsgi import get_input_stream

from pman.archive import (
    CHUNK,
    ArchiveError,
    Entry,
    OutFile,
    UnsafeEntry,
    multipart_boundary,
    multipart_entries,
    safe_name,
    tar_entries,
    tar_stream,
    zip_entries,
    zip_stream,
)
from pman.errors import (
    BadRequest,
    DataNotFound,
    JobNotFound,
    OutputNotReady,
    PayloadTooLarge,
    PmanError,
    StoreError,
    StoreUnavailable,
    UnsupportedMediaType,
)
from pman.jobs import Jobs
from pman.jobspec import (
    INPUT_ANNOTATION,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    OUTPUT_ANNOTATION,
    jid_selector,
)
from pman.models import is_jid
from pman.openapi import with_data_routes
from pman.settings import Settings
from pman.status import job_state
from pman.store import ObjectNotFound, Store

log = logging.getLogger(__name__)
data_api = Blueprint("pman_data", __name__)

MANIFEST = ".publisher-manifest.json"
MANIFEST_FORMAT = "pman-publisher-manifest/"
# A manifest lists every file with its checksums: some hundred bytes per file.
MAX_MANIFEST_BYTES = 64 << 20
MAX_OBJECT_NAME = 1024  # Swift's default max_object_name_length, in bytes
UPLOAD_THREADS = 8
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


@dataclass(frozen=True)
class Location:
    """Where a job's data lives: ``<container>/<prefix>`` (DESIGN.md, Swift layout)."""

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


@dataclass(frozen=True)
class Staged:
    """A file of an accepted upload, waiting in the spool."""

    name: str
    offset: int
    size: int
    md5: str


@dataclass(frozen=True)
class Published:
    """A file the publisher's manifest lists."""

    path: str
    object: str
    size: int


class DataService:
    """What the data routes need: settings, the jobs (for their locations) and Swift."""

    def __init__(self, settings: Settings, jobs: Jobs, store: Store | None) -> None:
        self.settings = settings
        self.jobs = jobs
        self._store = store

    @property
    def store(self) -> Store:
        if self._store is None:
            raise StoreUnavailable(NO_SWIFT)
        return self._store

    def find_job(self, jid: str) -> Obj | None:
        """The job's Job object, or None when pman has no job ``jid``."""
        cache = self.jobs.cache
        hit = cache.lookup(jid) if cache else None
        if hit is not None:
            return hit[0]
        try:
            job = self.jobs.kube.read_job(jid)
        except JobNotFound:
            return None
        return job if _labels(job).get(MANAGED_BY_LABEL) == MANAGED_BY else None

    def not_published(self, jid: str, job: Obj | None, location: Location) -> PmanError:
        """Why there is no output to download, as the error to answer with."""
        if job is None:
            return DataNotFound(f"no job {jid!r}, and no published output in {location}")
        hit = self.jobs.cache.lookup(jid) if self.jobs.cache else None
        pods = hit[1] if hit else self.jobs.kube.list_pods(jid_selector(jid))[0]
        state = job_state(job, pods)
        if state.finished:
            return OutputNotReady(
                f"job {jid!r} has no published output in {location}: it {state.status} "
                f"({state.message})"
            )
        return OutputNotReady(
            f"the output of job {jid!r} is not published yet: it is {state.status} "
            f"({state.phase}); try again once it has finished"
        )


def register_data_routes(app: Flask) -> None:
    """Add the data routes to the app ``create_app`` built, and to its OpenAPI document."""
    pman = app.extensions["pman"]
    credentials = pman.settings.swift_credentials
    store = Store(credentials) if credentials else None
    app.extensions["pman.data"] = DataService(pman.settings, pman.jobs, store)
    pman.openapi = with_data_routes(pman.openapi)
    app.register_blueprint(data_api)


def _service() -> DataService:
    return current_app.extensions["pman.data"]


# -- upload ----------------------------------------------------------------------------------
@data_api.post("/api/v1/_data/<jid>/input/")
def upload_input(jid: str) -> Any:
    service = _service()
    if not is_jid(jid):
        raise BadRequest(f"{jid!r} is not a job id: jids are DNS-1123 labels")
    kind = _upload_kind(request.mimetype)
    store = service.store
    job = service.find_job(jid)
    recorded = _annotations(job).get(INPUT_ANNOTATION) if job else None
    location = Location.parse(recorded or f"key-{jid}/incoming")
    limit = service.settings.max_data_bytes
    body = LimitedBody(_input_stream(limit), limit)
    with tempfile.TemporaryFile(prefix="pman-upload-") as spool:
        try:
            staged = stage(_entries(kind, body), spool, location, limit=limit)
        except (ArchiveError, UnsafeEntry) as error:
            raise BadRequest(str(error)) from None
        upload(store, location, staged, spool.fileno())
    size = sum(item.size for item in staged)
    log.info("uploaded %d files (%d bytes) to %s for job %s", len(staged), size, location, jid)
    return jsonify(
        {"jid": jid, "input_dir": str(location), "files": len(staged), "bytes": size}
    ), 201


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


class LimitedBody:
    """The request body, read in chunks, refused once more than ``limit`` bytes arrived."""

    def __init__(self, stream: BinaryIO, limit: int) -> None:
        self._stream = stream
        self._limit = limit
        self.count = 0

    def read(self, size: int = CHUNK) -> bytes:
        data = self._stream.read(size if size >= 0 else CHUNK)
        self.count += len(data)
        if self.count > self._limit:
            raise PayloadTooLarge(f"the request body is larger than {self._limit} bytes")
        return data


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


def stage(
    entries: Iterator[Entry], spool: BinaryIO, location: Location, *, limit: int
) -> list[Staged]:
    """Check every entry and copy its content to ``spool``; nothing goes to Swift here."""
    staged: list[Staged] = []
    names = _Names()
    total = 0
    for entry in entries:
        names.add(entry.name)
        if len(location.object_name(entry.name).encode()) > MAX_OBJECT_NAME:
            raise UnsafeEntry(entry.name, f"makes an object name longer than {MAX_OBJECT_NAME}")
        digest = hashlib.md5(usedforsecurity=False)
        offset, size = spool.tell(), 0
        for chunk in entry.chunks:
            size += len(chunk)
            total += len(chunk)
            if total > limit:
                raise PayloadTooLarge(f"the files in the upload add up to more than {limit} bytes")
            digest.update(chunk)
            spool.write(chunk)
        staged.append(Staged(entry.name, offset, size, digest.hexdigest()))
    spool.flush()
    return staged


class _Names:
    """The paths seen so far: each once, and never both a file and a directory."""

    def __init__(self) -> None:
        self._files: set[str] = set()
        self._dirs: set[str] = set()

    def add(self, name: str) -> None:
        if name in self._files:
            raise UnsafeEntry(name, "appears twice")
        if name in self._dirs:
            raise UnsafeEntry(name, "is both a file and a directory")
        parts = name.split("/")
        for end in range(1, len(parts)):
            parent = "/".join(parts[:end])
            if parent in self._files:
                raise UnsafeEntry(name, f"is inside {parent!r}, which is a file")
            self._dirs.add(parent)
        self._files.add(name)


def upload(store: Store, location: Location, staged: list[Staged], spool: int) -> None:
    """PUT the staged files from the spool (a file descriptor), several at a time."""
    with store.session() as swift:
        swift.ensure_container(location.container)
    pending: queue.SimpleQueue[Staged] = queue.SimpleQueue()
    for item in staged:
        pending.put(item)
    failed = threading.Event()

    def work() -> None:
        with store.session() as swift:
            while not failed.is_set():
                try:
                    item = pending.get_nowait()
                except queue.Empty:
                    return
                body = SpoolRegion(spool, item.offset, item.size)
                name = location.object_name(item.name)
                try:
                    swift.put_object(
                        location.container, name, body, length=item.size, etag=item.md5
                    )
                except BaseException:
                    failed.set()
                    raise

    workers = min(UPLOAD_THREADS, len(staged))
    with ThreadPoolExecutor(workers or 1, thread_name_prefix="pman-upload") as pool:
        futures = [pool.submit(work) for _ in range(workers)]
    for future in futures:
        future.result()


class SpoolRegion:
    """A seekable reader of one file's bytes in the spool (``os.pread``: no shared offset,
    so that several threads read the same spool at once)."""

    def __init__(self, fd: int, offset: int, size: int) -> None:
        self._fd, self._offset, self._size = fd, offset, size
        self._position = 0

    def read(self, size: int = -1) -> bytes:
        left = self._size - self._position
        wanted = left if size < 0 else min(size, left)
        data = os.pread(self._fd, wanted, self._offset + self._position) if wanted else b""
        self._position += len(data)
        return data

    def tell(self) -> int:
        return self._position

    def seek(self, position: int, whence: int = 0) -> int:
        if whence != 0:
            raise OSError("SpoolRegion only seeks from the start")
        self._position = position
        return position


# -- download --------------------------------------------------------------------------------
@data_api.get("/api/v1/_data/<jid>/output/")
def download_output(jid: str) -> Any:
    service = _service()
    if not is_jid(jid):
        raise JobNotFound(f"no job {jid!r}")
    mimetype, extension = _output_format()
    store = service.store
    job = service.find_job(jid)
    recorded = _annotations(job).get(OUTPUT_ANNOTATION) if job else None
    location = Location.parse(recorded or f"key-{jid}/outgoing")
    with store.session() as swift:
        try:
            manifest = swift.read_object(
                location.container, location.object_name(MANIFEST), limit=MAX_MANIFEST_BYTES
            )
        except ObjectNotFound:
            raise service.not_published(jid, job, location) from None
    files = published_files(manifest, location)
    chunks = _output_chunks(store, location, files, manifest, extension=extension, jid=jid)
    disposition = f'attachment; filename="{jid}-output.{extension}"'
    return Response(chunks, mimetype=mimetype, headers={"Content-Disposition": disposition})


def _output_format() -> tuple[str, str]:
    chosen = request.args.get("format")
    if chosen is None:
        offered = ["application/x-tar", "application/gzip", "application/zip"]
        best = request.accept_mimetypes.best_match(offered) or offered[0]
        chosen = {"application/gzip": "tgz", "application/zip": "zip"}.get(best, "tar")
    if chosen not in OUTPUT_FORMATS:
        raise BadRequest(f"format {chosen!r} is not one of tar, tgz, zip")
    return OUTPUT_FORMATS[chosen]


def published_files(manifest: bytes, location: Location) -> list[Published]:
    """The files a publisher manifest lists; StoreError unless it is complete and sane."""
    where = f"{location}/{MANIFEST}"
    try:
        document = json.loads(manifest)
    except ValueError:
        raise StoreError(f"{where} is not valid JSON") from None
    if (
        not isinstance(document, dict)
        or not str(document.get("format", "")).startswith(MANIFEST_FORMAT)
        or document.get("complete") is not True
        or not isinstance(document.get("files"), list)
    ):
        raise StoreError(f"{where} is not a complete publisher manifest")
    try:
        return [_published(item) for item in document["files"]]
    except (KeyError, TypeError, ValueError) as error:
        raise StoreError(f"{where} lists a file pman cannot serve: {error}") from None


def _published(item: Any) -> Published:
    size = item["bytes"]
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ValueError(f"{item['path']!r} has no valid size")
    if not isinstance(item["object"], str):
        raise ValueError(f"{item['path']!r} has no object name")
    return Published(safe_name(item["path"]), item["object"], size)


def _output_chunks(
    store: Store,
    location: Location,
    files: list[Published],
    manifest: bytes,
    *,
    extension: str,
    jid: str,
) -> Iterator[bytes]:
    with store.session() as swift:
        items = [
            OutFile(f.path, f.size, partial(_object_chunks, swift, location.container, f.object))
            for f in files
        ]
        items.append(OutFile(MANIFEST, len(manifest), lambda: iter([manifest])))
        if extension == "zip":
            stream = zip_stream(items)
        else:
            stream = tar_stream(items, gzip=extension == "tar.gz")
        try:
            yield from stream
        except (PmanError, ArchiveError) as error:
            # The status line is sent: all that is left is to cut the stream short.
            log.error("the output of job %s was cut short: %s", jid, error)
            raise


def _object_chunks(swift: Any, container: str, name: str) -> Iterator[bytes]:
    _, chunks = swift.stream_object(container, name)
    yield from chunks


def _annotations(job: Obj | None) -> dict[str, str]:
    return ((job or {}).get("metadata") or {}).get("annotations") or {}


def _labels(job: Obj) -> dict[str, str]:
    return (job.get("metadata") or {}).get("labels") or {}
