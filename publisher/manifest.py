"""The manifest object: written last, so a reader that sees it knows the output is complete.

Its name is ``<prefix>/.publisher-manifest.json`` (``.publisher-manifest.json`` when the
prefix is empty). Its format is described in publisher/README.rst.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from publisher import __version__

MANIFEST_NAME = ".publisher-manifest.json"
FORMAT = "pman-publisher-manifest/1"


def manifest_object_name(prefix: str) -> str:
    """The object name of the manifest for an output prefix."""
    return f"{prefix.strip('/')}/{MANIFEST_NAME}" if prefix.strip("/") else MANIFEST_NAME


def iso(timestamp: float) -> str:
    """A UNIX time as ISO-8601 UTC with milliseconds."""
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds")


def build_manifest(
    *,
    container: str,
    prefix: str,
    files: list[dict[str, Any]],
    skipped: list[dict[str, str]],
    started: float,
    finished: float,
    processor: dict[str, Any] | None = None,
    run: str | None = None,
) -> dict[str, Any]:
    """The manifest document (plain data; no credentials ever go in). ``run`` names the
    run that wrote it (pman gives each submission of a job one)."""
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "publisher_version": __version__,
        "run": run,
        "container": container,
        "prefix": prefix,
        "complete": True,
        "totals": {
            "files": len(files),
            "bytes": sum(f["bytes"] for f in files),
            "uploaded_files": sum(1 for f in files if f["uploaded"]),
            "uploaded_bytes": sum(f["bytes"] for f in files if f["uploaded"]),
            "skipped": len(skipped),
        },
        "timings": {
            "started_at": iso(started),
            "finished_at": iso(finished),
            "seconds": round(finished - started, 3),
        },
        "files": files,
        "skipped": skipped,
    }
    if processor is not None:
        manifest["processor"] = processor
    return manifest


def encode(manifest: dict[str, Any]) -> tuple[bytes, str]:
    """The manifest as JSON bytes, and their MD5."""
    body = json.dumps(manifest, indent=1, sort_keys=True).encode()
    return body, hashlib.md5(body, usedforsecurity=False).hexdigest()
