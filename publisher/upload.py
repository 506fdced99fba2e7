"""`upload`: every regular file under a directory to Swift, in parallel, then the manifest.

Files up to `segment_size` go as one PUT each; bigger files go as Static Large Objects
whose segments (in ``<container>_segments``) are uploaded in parallel. Every PUT carries
the MD5 of its body as ETag. One listing of the destination tells which objects are already
there with the same checksum (through temporary URLs, which cannot list, a HEAD of each
object before it is sent); those are skipped, so a rerun resumes. The manifest is written
last; a stale manifest is deleted before anything else changes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, InvalidStateError
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from publisher.errors import NothingToDownload, PublisherError, UsageError
from publisher.localfs import (
    FileSlice,
    LocalFile,
    Root,
    Skipped,
    UnsafePath,
    printable,
    scan_tree,
)
from publisher.manifest import MANIFEST_NAME, build_manifest, encode, manifest_object_name
from publisher.progress import Progress
from publisher.swift import ObjectInfo, Segment, SwiftStore
from publisher.transfer import SEGMENT_THREADS, THREADS, object_prefix, wait_all, worker_pool

log = logging.getLogger("publisher")

MIB = 1 << 20
IN_MEMORY_LIMIT = 1 * MIB
"""Files up to this size are read once into memory (bounded by the thread count)."""
HASH_CHUNK = 256 << 10
"""Bytes hashed at a time, read into a buffer each thread reuses (sized for the CPU cache)."""
MAX_OBJECT_NAME = 1024
MAX_MANIFEST = 64 << 20
"""The largest earlier manifest read (some hundred bytes per file)."""
CHRIS_LINK = ".chrislink"


@dataclass(frozen=True)
class UploadOptions:
    threads: int = THREADS
    segment_size: int = 64 * MIB
    """Files above this go as Static Large Objects in segments of this size."""
    segment_threads: int = SEGMENT_THREADS


@dataclass
class UploadResult:
    """What an upload did: the manifest's file list and what was skipped."""

    container: str
    prefix: str
    files: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    started: float = 0.0
    finished: float = 0.0
    manifest: dict[str, Any] | None = None
    manifest_at: tuple[str, str] | None = None
    """Where the manifest went when not under the prefix: (container, object)."""

    def summary(self) -> dict[str, Any]:
        assert self.manifest is not None
        at = self.manifest_at
        return {
            "container": self.container,
            "prefix": self.prefix,
            "manifest": manifest_object_name(self.prefix) if at is None else "/".join(at),
            **self.manifest["totals"],
            "seconds": self.manifest["timings"]["seconds"],
            "skipped_paths": [{"path": s.path, "reason": s.reason} for s in self.skipped],
        }


def upload_tree(
    store: SwiftStore,
    src: Path,
    container: str,
    prefix: str,
    *,
    options: UploadOptions,
    progress: Progress,
    processor: dict[str, Any] | None = None,
    existing: dict[str, ObjectInfo] | None = None,
    missing_ok: bool = False,
    run: str | None = None,
    manifest_at: tuple[str, str] | None = None,
    skip_chris_links: bool = False,
) -> UploadResult:
    """Upload `src` to container/prefix and write the manifest last, naming `run`.

    The manifest is ``<prefix>/.publisher-manifest.json``, or the object `manifest_at`
    (container, name) elsewhere: then nothing but the files lands under the prefix.

    The output replaces the one an earlier manifest (at the same place) describes: that
    manifest goes first (no reader takes the output for complete meanwhile), and the files
    it lists that this upload does not have are deleted before the new manifest is written.
    Objects no manifest ever listed are left alone.

    With `missing_ok`, a missing `src` is published as an empty output (a processor that
    failed before writing anything still gets its manifest). With `skip_chris_links`, files
    whose name ends in ``.chrislink`` are reported and not uploaded, as symbolic links are.
    """
    result = UploadResult(container, prefix.strip("/"), started=time.time())
    result.manifest_at = manifest_at
    if missing_ok and not src.exists():
        log.warning("%s does not exist: publishing an empty output", src)
        src.mkdir(parents=True, exist_ok=True)
    if not src.is_dir():
        raise UsageError(f"{src} is not a directory")
    files, result.skipped = _plan(
        src,
        object_prefix(prefix),
        reserve_manifest=manifest_at is None,
        skip_chris_links=skip_chris_links,
    )
    for item in result.skipped:
        log.warning("not uploaded: %s (%s)", item.path, item.reason)
    if existing is None:
        existing = list_destination(store, container, prefix)
    manifest_container, manifest_name = manifest_at or (container, manifest_object_name(prefix))
    earlier = _replaced_output(
        store, (manifest_container, manifest_name), container, object_prefix(prefix), existing
    )
    progress.total_files = len(files)
    progress.total_bytes = sum(f.size for f in files)
    with Root(src) as root:
        uploader = _Uploader(store, root, container, object_prefix(prefix), options, progress)
        result.files = uploader.run(files, existing)
        result.skipped.extend(uploader.late_skips)
    kept = {f["object"] for f in result.files}
    for name, segments in earlier.items():
        if name not in kept:
            store.delete_object(container, name, segments=segments)
    result.finished = time.time()
    result.manifest = build_manifest(
        container=container,
        prefix=result.prefix,
        files=result.files,
        skipped=[{"path": s.path, "reason": s.reason} for s in result.skipped],
        started=result.started,
        finished=result.finished,
        processor=processor,
        run=run,
    )
    body, md5 = encode(result.manifest)
    if manifest_at is not None:
        store.ensure_container(manifest_container)
    store.put_object(
        manifest_container,
        manifest_name,
        body,
        length=len(body),
        etag=md5,
        content_type="application/json",
    )
    return result


def _replaced_output(
    store: SwiftStore,
    manifest_at: tuple[str, str],
    container: str,
    name_prefix: str,
    existing: dict[str, ObjectInfo] | None,
) -> dict[str, list[Segment] | None]:
    """The objects of the earlier output this upload replaces, whose manifest (at
    `manifest_at`) is deleted now, before anything else changes; none when there is none.

    Temporary URLs that allow no GET and DELETE of the manifest (a drop box) replace
    nothing: what is there is overwritten, file by file, and the manifest last."""
    manifest_container, manifest_name = manifest_at
    where = f"{manifest_container}/{manifest_name}"
    if not (store.allows("GET", *manifest_at) and store.allows("DELETE", *manifest_at)):
        log.info("no GET and DELETE of %s allowed: an earlier output is overwritten", where)
        return {}
    listed = manifest_container == container and manifest_name.startswith(name_prefix)
    if listed and existing is not None and manifest_name not in existing:
        return {}  # the listing shows there is none
    earlier = _earlier_output(store, manifest_at, container, name_prefix)
    if earlier is None:
        return {}
    store.delete_object(manifest_container, manifest_name)
    return earlier


def _earlier_output(
    store: SwiftStore, manifest_at: tuple[str, str], container: str, name_prefix: str
) -> dict[str, list[Segment] | None] | None:
    """The objects the earlier manifest at `manifest_at` lists under container/prefix, each
    with its segments when it is a Static Large Object; None when there is no manifest,
    nothing when it is unreadable or describes another output (which only leaves them in
    place)."""
    manifest_container, manifest_name = manifest_at
    where = f"{manifest_container}/{manifest_name}"
    try:
        raw = store.read_small(manifest_container, manifest_name, limit=MAX_MANIFEST)
    except NothingToDownload:
        return None
    except PublisherError as exc:
        log.warning("the earlier manifest %s is unreadable (%s)", where, exc)
        return {}
    try:
        document = json.loads(raw)
        if document.get("container") != container:
            raise ValueError(f"it describes container {document.get('container')!r}")
        earlier = {f["object"]: _segments_of(f, container) for f in document["files"]}
    except (ValueError, KeyError, TypeError) as exc:
        log.warning("the earlier manifest %s is unreadable (%s)", where, exc)
        return {}
    return {
        name: segments
        for name, segments in earlier.items()
        if isinstance(name, str)
        and name.startswith(name_prefix)
        and (container, name) != (manifest_container, manifest_name)
    }


def _segments_of(entry: dict[str, Any], container: str) -> list[Segment] | None:
    """The segments of a manifest's entry that is a Static Large Object, by the names the
    upload gives them (`segment_name`); None for a plain object."""
    large = entry.get("large_object")
    if large is None:
        return None
    name, size, step = entry["object"], int(entry["bytes"]), int(large["segment_bytes"])
    count = int(large["segments"])
    return [
        Segment(
            f"{container}_segments",
            segment_name(name, size, step, index),
            min(step, size - index * step),
            "",
        )
        for index in range(count)
    ]


def segment_name(name: str, size: int, segment_size: int, index: int) -> str:
    """The object name of segment `index` of object `name`, in ``<container>_segments``:
    a file of another size or cut in other segments never shares one."""
    return f"{name}/slo/{size}/{segment_size}/{index:08d}"


def list_destination(
    store: SwiftStore, container: str, prefix: str
) -> dict[str, ObjectInfo] | None:
    """Create the container if needed and list what is already under the prefix; None when
    the store cannot list (temporary URLs): each object is then looked up before it is
    sent."""
    store.ensure_container(container)
    if not store.can_list:
        return None
    return {o.name: o for o in store.list_objects(container, object_prefix(prefix))}


def _plan(
    src: Path, name_prefix: str, *, reserve_manifest: bool = True, skip_chris_links: bool = False
) -> tuple[list[LocalFile], list[Skipped]]:
    files, skipped = scan_tree(src)
    kept = []
    for f in files:
        reason = _unusable_name(f.path, name_prefix, reserve_manifest=reserve_manifest)
        if not reason and skip_chris_links and f.path.endswith(CHRIS_LINK):
            reason = "a ChRIS link (.chrislink): never published"
        if reason:
            skipped.append(Skipped(printable(f.path), reason))
        else:
            kept.append(f)
    return kept, skipped


def _unusable_name(path: str, name_prefix: str, *, reserve_manifest: bool = True) -> str:
    try:
        encoded = (name_prefix + path).encode("utf-8")
    except UnicodeEncodeError:
        return "file name is not valid UTF-8"
    if len(encoded) > MAX_OBJECT_NAME:
        return f"object name longer than {MAX_OBJECT_NAME} bytes"
    if reserve_manifest and path == MANIFEST_NAME:
        return "reserved for the publisher's manifest"
    return ""


class _Unknown:
    """What the destination holds at a name that is yet to be looked up."""


UNKNOWN = _Unknown()

_buffers = threading.local()


def _md5_of(fd: int, offset: int, length: int) -> str:
    buffer = getattr(_buffers, "hash", None)
    if buffer is None:
        buffer = _buffers.hash = memoryview(bytearray(HASH_CHUNK))
    digest = hashlib.md5(usedforsecurity=False)
    end = offset + length
    while offset < end:
        count = os.preadv(fd, [buffer[: min(HASH_CHUNK, end - offset)]], offset)
        if not count:
            raise UnsafePath("file shrank while being read")
        digest.update(buffer[:count])
        offset += count
    return digest.hexdigest()


class _Uploader:
    """One upload run: a thread pool over small files and large-file segments."""

    def __init__(
        self,
        store: SwiftStore,
        root: Root,
        container: str,
        name_prefix: str,
        options: UploadOptions,
        progress: Progress,
    ) -> None:
        self.store, self.root, self.container = store, root, container
        self.name_prefix, self.options, self.progress = name_prefix, options, progress
        self.segment_container = f"{container}_segments"
        self.lock = threading.Lock()
        self.late_skips: list[Skipped] = []
        self.whole_warned = False

    def run(self, files: list[LocalFile], existing: dict[str, ObjectInfo] | None) -> list[dict]:
        """Upload `files`; `existing` is what the destination holds, or None when each
        object must be looked up (HEAD) before it is sent."""
        large = [f for f in files if self._is_large(f)]
        segments = self._existing_segments() if large else {}
        results: dict[str, dict] = {}
        pending_segments: list[tuple[_LargeFile, int]] = []
        small: list[tuple[LocalFile, ObjectInfo | _Unknown | None]] = []
        for f in files:
            info = UNKNOWN if existing is None else existing.get(self.name_prefix + f.path)
            if self._is_large(f):
                large_file = _LargeFile(self, f, info, segments, results)
                pending_segments.extend((large_file, i) for i in range(len(large_file.ranges)))
            else:
                small.append((f, info))
        hashes = _SegmentHashes(pending_segments, ahead=self.options.segment_threads)
        # The hasher has a thread of its own: in the pool it could wait behind segment
        # workers that wait for it.
        hasher = threading.Thread(target=hashes.run, name="upload-hasher", daemon=True)
        hasher.start()
        with worker_pool(self.options.threads, "upload") as pool:
            # A few workers take segments in order: memory and disk seeks stay bounded
            # however large the output is. They start first, being the longest work, and
            # small files keep the other threads.
            queue = enumerate(pending_segments)
            workers = min(self.options.segment_threads, len(pending_segments))
            futures = [pool.submit(self._segment_worker, queue, hashes) for _ in range(workers)]
            futures.extend(pool.submit(self._small, f, info, results) for f, info in small)
            try:
                wait_all(futures)
            finally:
                hashes.close()
        hasher.join()
        return [results[f.path] for f in files if f.path in results]

    def _segment_worker(
        self, queue: Iterator[tuple[int, tuple[_LargeFile, int]]], hashes: _SegmentHashes
    ) -> None:
        while True:
            with self.lock:
                item = next(queue, None)
            if item is None:
                return
            position, (large_file, index) = item
            large_file.segment(index, hashes.take(position))

    def _is_large(self, f: LocalFile) -> bool:
        if f.size <= self.options.segment_size:
            return False
        if not self.store.writes_large_objects:
            if not self.whole_warned:
                self.whole_warned = True
                log.warning(
                    "files above the segment size go as single objects (at most Swift's "
                    "largest, 5 GiB by default): no large-object service to write the "
                    "manifest of a Static Large Object, which a temporary URL cannot"
                )
            return False
        return True

    def _existing_segments(self) -> dict[str, ObjectInfo] | None:
        """The segments already uploaded; None when each must be looked up."""
        self.store.ensure_container(self.segment_container)
        if not self.store.can_list:
            return None
        listing = self.store.list_objects(self.segment_container, self.name_prefix)
        return {o.name: o for o in listing}

    def look_up(self, container: str, name: str, info: ObjectInfo | _Unknown | None) -> Any:
        """`info`, or what Swift holds at container/name when it is not known yet."""
        return self.store.head_object(container, name) if info is UNKNOWN else info

    def _small(self, f: LocalFile, info: ObjectInfo | _Unknown | None, results: dict) -> None:
        name = self.name_prefix + f.path
        try:
            fd = self.root.open_file(f.path)
        except UnsafePath as exc:
            # Replaced by a link or special file after the scan: never followed.
            with self.lock:
                self.late_skips.append(Skipped(f.path, str(exc)))
            return
        try:
            if f.size <= IN_MEMORY_LIMIT:
                data = os.pread(fd, f.size + 1, 0)
                if len(data) != f.size:
                    raise UnsafePath(f"{f.path}: changed size while being uploaded")
                md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
                body: bytes | Callable = data
            else:
                md5 = _md5_of(fd, 0, f.size)
                body = lambda: FileSlice(fd, 0, f.size)  # noqa: E731 - reopened per retry
            info = self.look_up(self.container, name, info)
            done = info is not None and info.etag == md5 and info.size == f.size
            if not done:
                self.store.put_object(self.container, name, body, length=f.size, etag=md5)
        finally:
            os.close(fd)
        self._record(results, f, name, md5, uploaded=not done)

    def _record(self, results: dict, f: LocalFile, name: str, md5: str, **extra: Any) -> None:
        with self.lock:
            results[f.path] = {"path": f.path, "object": name, "bytes": f.size, "md5": md5, **extra}
        self.progress.add(files=1, nbytes=f.size)


class _SegmentHashes:
    """The MD5s of the segments to upload, computed in order by one thread of their own.

    A segment's MD5 goes in its PUT's headers, so it is read once to be hashed before it is
    sent. Hashing ahead of the threads that send keeps them sending: the 1 GiB upload took
    6 to 13 % less time (bench/README.md). The hasher stays at most `ahead` segments in
    front of the last one taken, so what it has read is still in the page cache when it is
    sent.
    """

    def __init__(self, segments: list[tuple[_LargeFile, int]], *, ahead: int) -> None:
        self.segments, self.ahead = segments, max(1, ahead)
        self.futures: list[Future] = [Future() for _ in segments]
        self.taken = 0
        self.closed = False
        self.changed = threading.Condition()

    def run(self) -> None:
        for position, ((large_file, index), future) in enumerate(
            zip(self.segments, self.futures, strict=True)
        ):
            with self.changed:
                self.changed.wait_for(lambda p=position: self.closed or p < self.taken + self.ahead)
                if self.closed:
                    return
            with suppress(InvalidStateError):  # cancelled by close() meanwhile
                try:
                    future.set_result(large_file.hash_segment(index))
                except BaseException as exc:
                    future.set_exception(exc)

    def take(self, position: int) -> Future:
        """The future MD5 of the segment at `position`, which a sender has now taken."""
        with self.changed:
            self.taken = max(self.taken, position + 1)
            self.changed.notify_all()
        return self.futures[position]

    def close(self) -> None:
        """Stop hashing; a sender still waiting for a hash gets CancelledError."""
        with self.changed:
            self.closed = True
            self.changed.notify_all()
        for future in self.futures:
            future.cancel()


class _LargeFile:
    """A file uploaded as a Static Large Object; the last segment to finish writes it."""

    def __init__(
        self,
        up: _Uploader,
        f: LocalFile,
        info: ObjectInfo | _Unknown | None,
        segments: dict[str, ObjectInfo] | None,
        results: dict,
    ) -> None:
        self.up, self.f, self.info, self.existing, self.results = up, f, info, segments, results
        self.name = up.name_prefix + f.path
        size, step = f.size, up.options.segment_size
        self.ranges = [(off, min(step, size - off)) for off in range(0, size, step)]
        self.etags: list[str] = [""] * len(self.ranges)
        self.remaining = len(self.ranges)
        self.lock = threading.Lock()

    def segment_name(self, index: int) -> str:
        return segment_name(self.name, self.f.size, self.up.options.segment_size, index)

    def hash_segment(self, index: int) -> str:
        offset, length = self.ranges[index]
        fd = self.up.root.open_file(self.f.path)
        try:
            return _md5_of(fd, offset, length)
        finally:
            os.close(fd)

    def segment(self, index: int, md5: Future) -> None:
        """Upload one segment, once its MD5 is known; the last one to finish writes the
        large object's manifest."""
        self._put_segment(index, md5.result())
        with self.lock:
            self.remaining -= 1
            last = self.remaining == 0
        if last:
            self._finish()

    def _put_segment(self, index: int, md5: str) -> None:
        offset, length = self.ranges[index]
        fd = self.up.root.open_file(self.f.path)
        try:
            seg = self.segment_name(index)
            known = (
                self.existing.get(seg)
                if self.existing is not None
                else self.up.store.head_object(self.up.segment_container, seg)
            )
            if known is None or known.etag != md5 or known.size != length:
                self.up.store.put_object(
                    self.up.segment_container,
                    seg,
                    lambda: FileSlice(fd, offset, length),
                    length=length,
                    etag=md5,
                )
        finally:
            os.close(fd)
        self.up.progress.add(nbytes=length)
        with self.lock:
            self.etags[index] = md5

    def _finish(self) -> None:
        slo_etag = hashlib.md5("".join(self.etags).encode(), usedforsecurity=False).hexdigest()
        info = self.up.look_up(self.up.container, self.name, self.info)
        done = info is not None and info.slo_etag == slo_etag
        if not done:
            manifest = [
                {
                    "path": f"/{self.up.segment_container}/{self.segment_name(i)}",
                    "etag": etag,
                    "size_bytes": self.ranges[i][1],
                }
                for i, etag in enumerate(self.etags)
            ]
            self.up.store.put_large_object(self.up.container, self.name, manifest, etag=slo_etag)
        with self.up.lock:
            self.results[self.f.path] = {
                "path": self.f.path,
                "object": self.name,
                "bytes": self.f.size,
                "md5": None,
                "large_object": {
                    "segments": len(self.etags),
                    "segment_bytes": self.up.options.segment_size,
                    "segment_md5s": self.etags,
                    "etag": slo_etag,
                },
                "uploaded": not done,
            }
        self.up.progress.add(files=1)
