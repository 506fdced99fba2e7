"""A job's published output read back from Swift: the publisher's manifest says which
files make it up, and they are streamed, a chunk at a time, into a tar or zip archive that
ends with the manifest itself."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

from pman.archive import ArchiveError, OutFile, UnsafeEntry, safe_name, tar_stream, zip_stream
from pman.errors import PmanError, StoreError
from pman.swift import Location, Store, SwiftSession

log = logging.getLogger(__name__)

MANIFEST = ".publisher-manifest.json"
MANIFEST_FORMAT = "pman-publisher-manifest/"
# A manifest lists every file with its checksums: some hundred bytes per file.
MAX_MANIFEST_BYTES = 64 << 20


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
        return [_published(item, location) for item in document["files"]]
    except (KeyError, TypeError, ValueError) as error:
        raise StoreError(f"{where} lists a file pman cannot serve: {error}") from None


def _published(item: Any, location: Location) -> Published:
    size = item["bytes"]
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ValueError(f"{item['path']!r} has no valid size")
    return Published(safe_name(item["path"]), _output_object(item, location), size)


def _output_object(item: Any, location: Location) -> str:
    """The listed object name, if it lies under the output prefix. Anyone who can write the
    manifest could otherwise make pman read other objects with its own credentials, even
    in other containers: HTTP clients resolve ``..`` in a URL path."""
    name = item["object"]
    if not isinstance(name, str):
        raise ValueError(f"{item['path']!r} has no object name")
    try:
        safe_name(name)
    except UnsafeEntry:
        name = ""  # '..', '.', empty segments or an absolute name: never under the prefix
    if not name or not name.startswith(location.object_name("")):
        raise ValueError(f"{item['path']!r} is stored outside the output: {item['object']!r}")
    return name


def output_chunks(
    store: Store,
    location: Location,
    files: list[Published],
    manifest: bytes,
    *,
    extension: str,
    jid: str,
) -> Iterator[bytes]:
    """The archive's chunks: ``files`` read from Swift as the consumer asks, then the
    manifest. A failure once it has begun ends the stream early: it never looks complete."""
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


def _object_chunks(swift: SwiftSession, container: str, name: str) -> Iterator[bytes]:
    _, chunks = swift.stream_object(container, name)
    yield from chunks
