"""`download`: every object under a Swift prefix into a directory, each checked by MD5.

All names are checked before anything is written: a name that would land outside the
destination (``..``, ``.``, absolute, empty segments) or that clashes with another
(``a`` as a file and as a directory) stops the download with the object named. Objects are
fetched in parallel; a Static or Dynamic Large Object is fetched segment by segment (a
few segments at once), each segment checked against its own MD5. Every file is written to a
temporary name and renamed into place only once it is complete and verified.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from publisher.errors import (
    ContainerNotFound,
    InputRefused,
    IntegrityError,
    Interrupted,
    LocalIOError,
    NothingToDownload,
    UnsafeName,
    UsageError,
)
from publisher.localfs import PartialFile, Root, UnsafePath
from publisher.manifest import MANIFEST_NAME
from publisher.progress import Progress
from publisher.swift import ObjectInfo, Segment, SwiftStore
from publisher.transfer import SEGMENT_THREADS, THREADS, object_prefix, wait_all, worker_pool
from swiftcreds.tempurl import TempUrl, exact

log = logging.getLogger("publisher")

NAME_MAX = 255
PLAN_FORMAT = "pman-stage-in-plan/"
MAX_PLAN = 256 << 20
"""The largest stage-in plan read (some hundred bytes per file)."""
STOP_GRACE = 2.0
"""Seconds an interrupted download waits for its running tasks to remove their partial files."""


@dataclass(frozen=True)
class DownloadOptions:
    threads: int = THREADS
    segment_threads: int = SEGMENT_THREADS
    allow_empty: bool = False


@dataclass
class DownloadResult:
    container: str
    prefix: str
    files: int = 0
    bytes: int = 0
    directories: int = 0
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "container": self.container,
            "prefix": self.prefix,
            "files": self.files,
            "bytes": self.bytes,
            "directories": self.directories,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class _Item:
    """One file to write: where, and the pieces (whole object or segments) it is made of."""

    path: str
    obj: ObjectInfo
    pieces: list[Segment] = field(default_factory=list)


def make_output_dir(path: Path) -> None:
    """Create `path` (and its missing parents) writable by any user, as an emptyDir's root is.

    In a job pod nothing else creates the processor's output directory, and the processor
    may run under any UID (OpenShift picks one per namespace). An existing directory is
    left as it is; a link or a file there is refused.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            path.mkdir()
        except FileExistsError:
            if path.is_symlink() or not path.is_dir():
                raise UnsafeName(
                    f"{path}: refused, something other than a directory is there"
                ) from None
            return
        # The mode given to mkdir is cut by the umask; chmod is not.
        os.chmod(path, 0o777)
    except OSError as exc:
        raise LocalIOError(f"{path}: {exc.strerror}") from exc


def relative_path(name: str, name_prefix: str) -> str:
    """The path an object lands at under the destination, or UnsafeName."""
    rel = name[len(name_prefix) :]
    parts = rel.split("/")
    if rel.startswith("/"):
        raise UnsafeName(f"object {name!r} has an absolute path: refused")
    if rel.endswith("/"):
        parts = parts[:-1]  # a directory marker
    bad = [p for p in parts if p in ("", ".", "..")]
    if bad or not parts:
        shown = "empty" if bad and bad[0] == "" else repr(bad[0]) if bad else "empty"
        raise UnsafeName(f"object {name!r} has a {shown} path segment: refused")
    if "\x00" in rel or any(len(p.encode()) > NAME_MAX for p in parts):
        raise UnsafeName(f"object {name!r} cannot be a file name here: refused")
    return rel


def download_prefix(
    store: SwiftStore,
    container: str,
    prefix: str,
    dest: Path,
    *,
    options: DownloadOptions,
    progress: Progress,
) -> DownloadResult:
    """Download container/prefix into `dest`."""
    started = time.monotonic()
    result = DownloadResult(container, prefix.strip("/"))
    name_prefix = object_prefix(prefix)
    listing = _listing(store, container, name_prefix, allow_empty=options.allow_empty)
    files, directories = _plan(listing, name_prefix)
    if not files and not directories and not options.allow_empty:
        raise NothingToDownload(
            f"nothing to download: no object under {container}/{name_prefix or ''}"
        )
    _expand_large_objects(store, container, files)
    progress.total_files = len(files)
    progress.total_bytes = sum(item.obj.size for item in files)
    with Root(dest, create=True) as root:
        for directory in directories:
            _local(directory, root.make_dir)
        _Downloader(
            store,
            root,
            container,
            progress,
            threads=options.threads,
            segment_threads=options.segment_threads,
        ).run(files)
    result.files, result.bytes = len(files), progress.total_bytes
    result.directories = len(directories)
    result.seconds = time.monotonic() - started
    return result


@dataclass(frozen=True)
class StageInPlan:
    """A stage-in plan: the objects of ``container`` to download, each to its own path, and
    the temporary URLs to read them with (none when the plan's reader has credentials)."""

    container: str
    files: list[_Item]
    links: int
    urls: list[TempUrl] = field(default_factory=list)
    allow_empty: bool = True
    inputs: list[str] = field(default_factory=list)


def download_plan(
    store: SwiftStore,
    container: str,
    name: str,
    dest: Path,
    *,
    options: DownloadOptions,
    progress: Progress,
) -> DownloadResult:
    """Download what the stage-in plan in object container/name lists into `dest`: exactly
    those objects, each to its planned path, each checked against its planned ETag."""
    started = time.monotonic()
    plan = read_plan(store, container, name)
    if not plan.files and not plan.allow_empty:
        where = ", ".join(f"{plan.container}/{prefix}" for prefix in plan.inputs)
        raise NothingToDownload(
            f"nothing to download: no object under {where or plan.container} when the job "
            "was submitted"
        )
    store.add(plan.urls)
    _check_clashes({item.path: item for item in plan.files}, set())
    _planned_pieces(store, plan.container, plan.files)
    progress.total_files = len(plan.files)
    progress.total_bytes = sum(item.obj.size for item in plan.files)
    with Root(dest, create=True) as root:
        _Downloader(
            store,
            root,
            plan.container,
            progress,
            threads=options.threads,
            segment_threads=options.segment_threads,
        ).run(plan.files)
    log.info("the plan had %d files, %d ChRIS links followed", len(plan.files), plan.links)
    result = DownloadResult(plan.container, "", files=len(plan.files))
    result.bytes = progress.total_bytes
    result.seconds = time.monotonic() - started
    return result


def read_plan(store: SwiftStore, container: str, name: str) -> StageInPlan:
    """The plan in object container/name; InputRefused when it refuses the input, UsageError
    when it is no plan, UnsafeName when a path would leave the destination."""
    where = f"{container}/{name}"
    try:
        document = json.loads(store.read_small(container, name, limit=MAX_PLAN))
    except NothingToDownload:
        raise NothingToDownload(f"the stage-in plan {where} does not exist") from None
    except ValueError:
        raise UsageError(f"{where} is not a stage-in plan (not JSON)") from None
    if not isinstance(document, dict) or not str(document.get("format", "")).startswith(
        PLAN_FORMAT
    ):
        raise UsageError(f"{where} is not a stage-in plan (no {PLAN_FORMAT} format)")
    if document.get("error"):
        raise InputRefused(str(document["error"]))
    source = document.get("container")
    entries = document.get("files")
    if not isinstance(source, str) or not source or not isinstance(entries, list):
        raise UsageError(f"{where} is not a stage-in plan (no container or no files)")
    signed = _signed_by(document, where)
    try:
        files = [_planned(entry, source, signed) for entry in entries]
    except (KeyError, TypeError, ValueError) as exc:
        raise UsageError(f"{where} lists a file it does not describe: {exc}") from None
    links = document.get("links")
    inputs = document.get("input_dirs")
    return StageInPlan(
        source,
        files,
        len(links) if isinstance(links, list) else 0,
        urls=[url for item in files for url in signed.taken(item)],
        allow_empty=document.get("allow_empty", True) is not False,
        inputs=[str(i) for i in inputs] if isinstance(inputs, list) else [],
    )


class _Signatures:
    """The temporary URLs a plan holds: one GET per planned object and segment, all with
    the plan's storage URL and expiry time (none in a plan for credentials)."""

    def __init__(self, storage_url: str | None, expires: int | None) -> None:
        self.storage_url, self.expires = storage_url, expires
        self.urls: dict[int, list[TempUrl]] = {}

    def sign(self, item: _Item, container: str, name: str, entry: dict[str, Any]) -> None:
        if self.storage_url is None:
            return
        url = exact(
            "GET",
            self.storage_url,
            container,
            name,
            signature=entry.get("temp_url_sig"),
            expires=self.expires,
        )
        self.urls.setdefault(id(item), []).append(url)

    def taken(self, item: _Item) -> list[TempUrl]:
        return self.urls.get(id(item), [])


def _signed_by(document: dict[str, Any], where: str) -> _Signatures:
    signed = document.get("temp_urls")
    if signed is None:
        return _Signatures(None, None)
    storage, expires = (
        signed.get(k) if isinstance(signed, dict) else None for k in ("storage_url", "expires")
    )
    if not isinstance(storage, str) or not isinstance(expires, int):
        raise UsageError(
            f"{where} is not a stage-in plan (temp_urls without a storage URL or expiry)"
        )
    return _Signatures(storage, expires)


def _planned(entry: dict[str, Any], container: str, signed: _Signatures) -> _Item:
    size, name, path = entry["bytes"], entry["object"], entry["path"]
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ValueError(f"{path!r} has no valid size")
    if not isinstance(name, str) or not name or not isinstance(path, str):
        raise ValueError(f"{path!r} has no object name")
    etag, slo_etag = str(entry["etag"]), str(entry.get("slo_etag") or "")
    try:
        relative_path(path, "")
    except UnsafeName as exc:
        raise UnsafeName(f"the plan's path {path!r} would leave the destination: {exc}") from None
    if path.endswith("/"):
        raise UnsafeName(f"the plan's path {path!r} is not a file name: refused")
    item = _Item(path, ObjectInfo(name, size, etag, slo_etag=slo_etag))
    if (segments := entry.get("segments")) is not None:
        if not slo_etag or not isinstance(segments, list) or not segments:
            raise ValueError(f"{path!r} has segments but is no Static Large Object")
        for segment in segments:
            piece = Segment(
                str(segment["container"]),
                str(segment["object"]),
                int(segment["bytes"]),
                str(segment["etag"]),
            )
            item.pieces.append(piece)
            signed.sign(item, piece.container, piece.name, segment)
    elif not slo_etag:
        signed.sign(item, container, name, entry)
    return item


def _planned_pieces(store: SwiftStore, container: str, files: list[_Item]) -> None:
    """Each planned file's pieces, each with the ETag it must have: the object's planned
    one, or for a Static Large Object its segments' (which must add up to the planned)."""
    for item in files:
        if item.obj.slo_etag:
            if not item.pieces:  # else the plan lists them (a temporary URL cannot read them)
                item.pieces = store.slo_segments(container, item.obj.name)
            joined = "".join(piece.etag for piece in item.pieces)
            if hashlib.md5(joined.encode(), usedforsecurity=False).hexdigest() != (
                item.obj.slo_etag
            ):
                raise IntegrityError(
                    f"object {item.obj.name!r} changed since the job was submitted: its "
                    "segments are not the planned ones"
                )
        else:
            item.pieces = [Segment(container, item.obj.name, item.obj.size, item.obj.etag)]
        total = sum(p.size for p in item.pieces)
        if total != item.obj.size:
            raise IntegrityError(
                f"object {item.obj.name!r} changed since the job was submitted: it has "
                f"{total} bytes, the plan says {item.obj.size}"
            )


def _listing(store: SwiftStore, container: str, name_prefix: str, *, allow_empty: bool) -> list:
    try:
        return store.list_objects(container, name_prefix)
    except ContainerNotFound:
        if allow_empty:
            log.info("container %s does not exist: nothing to download", container)
            return []
        raise


def _plan(listing: list[ObjectInfo], name_prefix: str) -> tuple[list[_Item], list[str]]:
    files: dict[str, _Item] = {}
    directories: set[str] = set()
    for obj in listing:
        if obj.name == name_prefix + MANIFEST_NAME:
            continue
        if obj.name == name_prefix and obj.size == 0:
            continue  # the marker of the prefix's own "folder": that is the destination
        rel = relative_path(obj.name, name_prefix)
        if rel.endswith("/") and obj.size == 0:
            directories.add(rel.rstrip("/"))
        else:
            files[rel] = _Item(rel.rstrip("/"), obj)
    _check_clashes(files, directories)
    return sorted(files.values(), key=lambda i: i.path), sorted(directories)


def _check_clashes(files: dict[str, _Item], directories: set[str]) -> None:
    parents = set(directories)
    for path in files:
        parts = path.split("/")
        parents.update("/".join(parts[:i]) for i in range(1, len(parts)))
    for path, item in files.items():
        if path in parents:
            raise UnsafeName(
                f"object {item.obj.name!r} would be both a file and a directory: refused"
            )


def _expand_large_objects(store: SwiftStore, container: str, files: list[_Item]) -> None:
    """Give each item its pieces: the object itself, or its segments."""
    for item in files:
        if item.obj.slo_etag:
            item.pieces = store.slo_segments(container, item.obj.name)
        else:
            item.pieces = [Segment(container, item.obj.name, item.obj.size, "")]
        total = sum(p.size for p in item.pieces)
        if total != item.obj.size:
            raise IntegrityError(
                f"object {item.obj.name!r}: segments add up to {total} bytes, "
                f"the listing says {item.obj.size}"
            )


class _Downloader:
    def __init__(
        self,
        store: SwiftStore,
        root: Root,
        container: str,
        progress: Progress,
        *,
        threads: int,
        segment_threads: int,
    ) -> None:
        self.store, self.root, self.container = store, root, container
        self.threads, self.progress = threads, progress
        self.segment_threads = segment_threads
        self.stopping = threading.Event()

    def run(self, files: list[_Item]) -> None:
        writes = [_FileWrite(self, item) for item in files]
        whole: list[Callable[[], None]] = []
        segments: list[Callable[[], None]] = []
        for write in writes:
            tasks = write.tasks()
            (whole if len(tasks) == 1 else segments).extend(tasks)
        with worker_pool(self.threads, "download") as pool:
            # Segments of large objects go to a few workers, in order: their MD5s are
            # checked in parallel, while writes at scattered offsets stay few. They start
            # first, being the longest work; the other threads take the small objects.
            queue = iter(segments)
            lock = threading.Lock()
            workers = min(self.segment_threads, len(segments))
            futures = [pool.submit(_drain, queue, lock) for _ in range(workers)]
            futures.extend(pool.submit(task) for task in whole)
            try:
                wait_all(futures)
            except BaseException as exc:
                # Running tasks stop at their next chunk; then no partial file is left.
                # Interrupted, the process does not wait long for a task stuck in a request.
                self.stopping.set()
                grace = STOP_GRACE if isinstance(exc, Interrupted) else None
                _, running = wait(futures, timeout=grace)
                if not running:
                    for write in writes:
                        write.abandon()
                raise


class _FileWrite:
    """One destination file; each piece is a task; the last one renames the file into place."""

    def __init__(self, down: _Downloader, item: _Item) -> None:
        self.down, self.item = down, item
        self.lock = threading.Lock()
        self.remaining = len(item.pieces)
        self.failed = False
        self.closed = False
        self.partial: PartialFile | None = None

    def tasks(self) -> list:
        offsets, offset = [], 0
        for piece in self.item.pieces:
            offsets.append(offset)
            offset += piece.size
        return [
            lambda p=p, o=o: self._piece(p, o)
            for p, o in zip(self.item.pieces, offsets, strict=True)
        ]

    def _write(self, partial: PartialFile, position: int, data: Any) -> None:
        try:
            partial.write_at(position, data)
        except OSError as exc:
            raise LocalIOError(f"writing {self.item.path}: {exc.strerror}") from exc

    def _open(self) -> PartialFile:
        with self.lock:
            if self.partial is None:
                self.partial = _local(
                    self.item.path, self.down.root.partial_file, self.item.obj.size
                )
            return self.partial

    def _piece(self, piece: Segment, offset: int) -> None:
        if self.down.stopping.is_set():
            raise _Stopped
        partial = self._open()
        try:
            self._fetch(piece, offset, partial)
        except BaseException:
            self._done(partial, failed=True)
            raise
        self._done(partial, failed=False)

    def _done(self, partial: PartialFile, *, failed: bool) -> None:
        """One piece ended; after the last, the file is renamed into place or removed."""
        with self.lock:
            self.failed = self.failed or failed
            self.remaining -= 1
            if self.remaining or self.closed:
                return
            self.closed = True
            failed = self.failed
        if failed:
            partial.abort()
        else:
            partial.commit()
            self.down.progress.add(files=1)

    def abandon(self) -> None:
        """Remove the partial file of a download that stopped before all its pieces ran
        (called once no task runs any more)."""
        with self.lock:
            if self.partial is None or self.closed:
                return
            self.closed = True
        self.partial.abort()

    def _fetch(self, piece: Segment, offset: int, partial: PartialFile) -> None:
        def sink(headers: dict, body: Iterator[bytes]) -> None:
            if piece.etag == "" and "x-object-manifest" in headers:
                raise _IsDynamic(headers["x-object-manifest"])
            digest = hashlib.md5(usedforsecurity=False)
            position = offset
            for chunk in body:
                if self.down.stopping.is_set():
                    raise _Stopped
                digest.update(chunk)
                self._write(partial, position, chunk)
                position += len(chunk)
            expected = piece.etag or headers.get("etag", "").strip('"')
            _verify(piece, digest.hexdigest(), expected, position - offset)

        try:
            self.down.store.get_object(piece.container, piece.name, sink)
        except _IsDynamic as dynamic:
            self._fetch_dynamic(dynamic.args[0], offset, partial)
            return
        self.down.progress.add(nbytes=piece.size)

    def _fetch_dynamic(self, manifest: str, offset: int, partial: PartialFile) -> None:
        # Rare (pman never writes them): fetched one segment after the other.
        for segment in self.down.store.dlo_segments(manifest):
            self._fetch(segment, offset, partial)
            offset += segment.size


class _Stopped(BaseException):
    """The download was interrupted: a task stops (a BaseException: no retry catches it)."""


def _drain(queue: Iterator[Callable[[], None]], lock: threading.Lock) -> None:
    while True:
        with lock:
            task = next(queue, None)
        if task is None:
            return
        task()


def _local(path: str, action: Callable[..., Any], *args: Any) -> Any:
    """Run a local filesystem action, turning its failures into the publisher's errors."""
    try:
        return action(path, *args)
    except UnsafePath as exc:
        raise UnsafeName(
            f"{path}: refused, the destination has a link or special file there ({exc})"
        ) from exc
    except OSError as exc:
        raise LocalIOError(f"{path}: {exc.strerror}") from exc


class _IsDynamic(Exception):
    """Internal: the object turned out to be a Dynamic Large Object manifest."""


def _verify(piece: Segment, actual: str, expected: str, size: int) -> None:
    where = f"{piece.container}/{piece.name}"
    if size != piece.size and piece.size:
        raise IntegrityError(f"object {where}: got {size} bytes, expected {piece.size}")
    if actual != expected:
        raise IntegrityError(
            f"object {where} is corrupt: MD5 {actual} does not match ETag {expected}"
        )
