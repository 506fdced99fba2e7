"""A job's published output read back from Swift: the publisher's manifest says which
files make it up, and they are streamed, a chunk at a time, into a tar or zip archive that
ends with the manifest itself."""

from __future__ import annotations

import json
import logging
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

from pman.archive import (
    ArchiveError,
    OutFile,
    Paths,
    UnsafeEntry,
    safe_name,
    tar_stream,
    zip_stream,
)
from pman.errors import ObjectNotFound, PmanError, StoreError
from pman.pod import MANIFEST, MANIFEST_FORMAT
from pman.swift import Location, Store, SwiftSession

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Published:
    """A file the publisher's manifest lists."""

    path: str
    object: str
    size: int


def published_files(manifest: bytes, location: Location) -> list[Published]:
    """The files a publisher manifest lists; StoreError unless it is complete and sane."""
    where = f"{location}/{MANIFEST}"
    try:
        document = json.loads(manifest)
    except (ValueError, RecursionError):
        raise StoreError(f"{where} is not valid JSON") from None
    if (
        not isinstance(document, dict)
        or not str(document.get("format", "")).startswith(MANIFEST_FORMAT)
        or document.get("complete") is not True
        or not isinstance(document.get("files"), list)
    ):
        raise StoreError(f"{where} is not a complete publisher manifest")
    try:
        files = [
            _published(number, item, location) for number, item in enumerate(document["files"])
        ]
    except (UnsafeEntry, ValueError) as error:
        raise StoreError(f"{where} lists a file pman cannot serve: {error}") from None
    _check_paths(files, where)
    return files


def _published(number: int, item: Any, location: Location) -> Published:
    if not isinstance(item, dict) or not isinstance(item.get("path"), str):
        raise ValueError(f"its file {number} has no path")
    size = item.get("bytes")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ValueError(f"{item['path']!r} has no valid size")
    return Published(safe_name(item["path"]), _output_object(item, location), size)


def _output_object(item: Any, location: Location) -> str:
    """The listed object name, if it lies under the output prefix. Anyone who can write the
    manifest could otherwise make pman read other objects with its own credentials, even
    in other containers: HTTP clients resolve ``..`` in a URL path."""
    name = item.get("object")
    if not isinstance(name, str):
        raise ValueError(f"{item['path']!r} has no object name")
    try:
        safe_name(name)
    except UnsafeEntry:
        name = ""  # '..', '.', empty segments or an absolute name: never under the prefix
    if not name or not name.startswith(location.object_name("")):
        raise ValueError(f"{item['path']!r} is stored outside the output: {item['object']!r}")
    return name


def _check_paths(files: list[Published], where: str) -> None:
    """Each path once, never both a file and a directory, never the manifest's own name:
    an archive of them must unpack to the files the manifest lists."""
    paths = Paths()
    for item in files:
        if item.path == MANIFEST:
            raise StoreError(f"{where} lists {MANIFEST!r}, the name of the manifest itself")
        try:
            paths.file(item.path, item.path)
        except UnsafeEntry as error:
            raise StoreError(f"{where} lists a file pman cannot serve: {error}") from None


def check_stored(swift: SwiftSession, location: Location, files: list[Published]) -> None:
    """StoreError unless Swift holds every listed object with the size the manifest gives:
    found out before the first byte of the answer, while it can still say so."""
    where = f"{location}/{MANIFEST}"
    stored = swift.object_sizes(location.container, location.object_name(""))
    for item in files:
        size = stored.get(item.object)
        if size is None:
            raise StoreError(
                f"{where} lists {item.path!r}, but Swift has no object {item.object!r}"
            )
        if size != item.size:
            raise StoreError(
                f"{where} says {item.path!r} has {item.size} bytes, but Swift holds {size}"
            )


def output_chunks(
    store: Store,
    location: Location,
    files: list[Published],
    manifest: bytes,
    *,
    extension: str,
    jid: str,
) -> Generator[bytes, None, None]:
    """The archive's chunks: ``files`` read from Swift as the consumer asks, then the
    manifest. A failure before the first chunk is raised as a :class:`StoreError`; once
    chunks have gone out it ends the stream early (logged), so it never looks complete."""
    with store.session() as swift:
        check_stored(swift, location, files)
        items = [
            OutFile(f.path, f.size, partial(_object_chunks, swift, location.container, f.object))
            for f in files
        ]
        items.append(OutFile(MANIFEST, len(manifest), lambda: iter([manifest])))
        if extension == "zip":
            stream = zip_stream(items)
        else:
            stream = tar_stream(items, gzip=extension == "tar.gz")
        sent = False
        try:
            for chunk in stream:
                yield chunk
                sent = True
        except ArchiveError as error:
            if not sent:
                raise StoreError(
                    f"the output in {location} does not match its manifest: {error}"
                ) from None
            log.error("the output of job %s was cut short: %s", jid, error)
            raise
        except ObjectNotFound as error:
            if not sent:
                raise StoreError(
                    f"an object of the output in {location} is gone: {error}"
                ) from None
            log.error("the output of job %s was cut short: %s", jid, error)
            raise
        except PmanError as error:
            if sent:
                # The status line is sent: all that is left is to cut the stream short.
                log.error("the output of job %s was cut short: %s", jid, error)
            raise


def _object_chunks(swift: SwiftSession, container: str, name: str) -> Iterator[bytes]:
    _, chunks = swift.stream_object(container, name)
    yield from chunks
