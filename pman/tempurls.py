"""Job pods that hold no Swift secret (``SWIFT_POD_CREDENTIALS=tempurl``): the temporary URLs
pman signs for each job, the stage-in plans it writes for pman v6 jobs, and the manifests of
Static Large Objects it writes for the publisher.

A temporary URL (:mod:`swiftcreds.tempurl`) allows one method on one object, or on every
object under a prefix, until it expires; pman signs them with the account's temp URL key,
which it sets when the account has none. A job pod gets, all expiring after the job's
deadline and grace period (:attr:`~pman.settings.Settings.temp_url_seconds`):

- its stage-in, the GET URL of its stage-in plan, which holds a GET URL of each object to
  stage (and of each segment of a Static Large Object): a temporary URL cannot list a
  container, so pman lists the input when the job is submitted, as it does for every pfcon
  job, and the pod reads exactly what was there then;
- its publish container, PUT and DELETE under the output prefix (GET too for a pman v6
  job, whose earlier manifest is there), PUT and DELETE under the same prefix of
  ``<container>_segments``, and for a pfcon job PUT, GET and DELETE of its manifest in the
  bookkeeping container.

A temporary URL cannot create a container either: pman creates the output's and its
segments' when the job is submitted. Nor can it write the manifest of a Static Large
Object: Swift drops every query but the signature's from the request, so
``multipart-manifest=put`` would store the manifest as a plain object. The publisher sends
it to pman instead (``POST /api/v1/_large-objects/``, :func:`check_large_object`), with the
PUT URLs of the object and of its segments as proof that it may write them; pman checks
them as Swift would and writes the manifest with its own credentials.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pman.errors import BadRequest, Forbidden, ObjectNotFound, PmanError
from pman.jobspec import SignedAccess
from pman.models import JobRequest
from pman.pod import MANIFEST
from pman.settings import Settings
from pman.stagein import (
    MAX_FILES,
    InputRefused,
    Plan,
    Planned,
    plan_document,
)
from pman.swift import Location, Signer, Store, SwiftSession
from swiftcreds.tempurl import NotATempUrl, TempUrl, expiry, has_dot_segment

log = logging.getLogger(__name__)

LARGE_OBJECTS_ROUTE = "api/v1/_large-objects/"
"""Where, under ``PMAN_SERVICE_URL``, the publisher sends a large object's manifest."""
MAX_SEGMENTS = 10_000
"""Segments one manifest may list (Swift's own default limit is 1,000)."""
_MD5 = re.compile(r"[0-9a-f]{32}")


def plan_name(jid: str, run: str) -> str:
    """The stage-in plan of run ``run`` of ``jid``, in the bookkeeping container."""
    return f"runs/{jid}/{run}/stage-in.json"


def object_prefix(prefix: str) -> str:
    """The prefix objects are named under: '' or 'a/b/' (with the slash)."""
    prefix = prefix.strip("/")
    return f"{prefix}/" if prefix else ""


# -- what a job pod is given ------------------------------------------------------------------


def publish_access(
    signer: Signer,
    output: Location,
    *,
    plan: str,
    manifest: tuple[str, str] | None = None,
    service_url: str | None = None,
) -> SignedAccess:
    """The URLs of a job whose stage-in plan's GET URL is ``plan`` and whose output is
    ``output``: its manifest under the output (a pman v6 job) or at ``manifest``
    (container, object; a pfcon job)."""
    names = object_prefix(output.prefix)
    segments = f"{output.container}_segments"
    urls = []
    if manifest is None:  # the earlier manifest is under the output
        urls.append(("GET", signer.url("GET", output.container, names, prefix=True)))
    urls += [
        ("DELETE", signer.url("DELETE", output.container, names, prefix=True)),
        ("PUT", signer.url("PUT", segments, names, prefix=True)),
        ("DELETE", signer.url("DELETE", segments, names, prefix=True)),
    ]
    manifest_url = None
    if manifest is not None:
        container, name = manifest
        manifest_url = signer.url("PUT", container, name)
        urls += [
            ("GET", signer.url("GET", container, name)),
            ("DELETE", signer.url("DELETE", container, name)),
        ]
    return SignedAccess(
        plan=plan,
        destination=signer.url("PUT", output.container, names, prefix=True),
        temp_urls=tuple(urls),
        manifest=manifest_url,
        large_objects=service_url + LARGE_OBJECTS_ROUTE if service_url else None,
    )


def plan_folder(listing: Sequence[dict[str, Any]], prefix: str) -> Plan:
    """The plan of a pman v6 job: every object under ``prefix`` at its name relative to it,
    as ``publisher download`` stages a prefix (without the folder markers and the manifest
    at its top). Names that would leave ``/share/incoming`` are planned as they are: the
    stage-in refuses them, as it refuses them in a listing."""
    names = object_prefix(prefix)
    files = []
    for entry in listing:
        name, size = str(entry["name"]), int(entry.get("bytes", 0))
        rel = name[len(names) :]
        if (rel.endswith("/") and size == 0) or not rel or rel == MANIFEST:
            continue  # a folder's marker (the prefix's own too), the publisher's manifest
        etag, slo_etag = str(entry.get("hash", "")).strip('"'), str(entry.get("slo_etag") or "")
        files.append(Planned(name, etag, size, rel.rstrip("/"), slo_etag.strip('"')))
    return Plan(sorted(files, key=lambda f: f.path))


def sign_plan(
    document: dict[str, Any],
    signer: Signer,
    segments: Callable[[str], list[dict[str, Any]]],
) -> dict[str, Any]:
    """``document`` (a stage-in plan) with a GET URL of each object it plans: its
    signature, the storage URL and the expiry being the plan's. A Static Large Object is
    read segment by segment, so its segments (``segments(name)``, from its manifest) are
    planned and signed instead of it."""
    container = document["container"]
    files = []
    for entry in document["files"]:
        if entry.get("slo_etag"):
            planned = [_planned_segment(segment, signer) for segment in segments(entry["object"])]
            files.append({**entry, "segments": planned})
        else:
            sig = signer.signature("GET", container, entry["object"])
            files.append({**entry, "temp_url_sig": sig})
    return {
        **document,
        "files": files,
        "temp_urls": {"storage_url": signer.storage_url, "expires": signer.expires},
    }


def _planned_segment(segment: dict[str, Any], signer: Signer) -> dict[str, Any]:
    container, _, name = segment["name"].lstrip("/").partition("/")
    return {
        "container": container,
        "object": name,
        "bytes": segment["bytes"],
        "etag": segment["hash"].strip('"'),
        "temp_url_sig": signer.signature("GET", container, name),
    }


class TempUrls:
    """What pman does for the pods of ``SWIFT_POD_CREDENTIALS=tempurl``, with its own Swift
    credentials: sign, plan, create the output's containers, delete the plans."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.bookkeeping = settings.bookkeeping_container

    def signer(self, swift: SwiftSession) -> Signer:
        """A signer of URLs good until the end of a job submitted now."""
        return swift.signer(seconds=self.settings.temp_url_seconds)

    def v6_access(self, request: JobRequest, run: str) -> SignedAccess:
        """List the input of a pman v6 job, write its stage-in plan, create its output's
        containers; what its pod is given."""
        source, output = (
            Location.parse(str(request.input_dir)),
            Location.parse(str(request.output_dir)),
        )
        self._check_scope(source, output)
        with self.store.session() as swift:
            signer = self.signer(swift)
            try:
                listing = swift.list_objects(source.container, object_prefix(source.prefix))
            except ObjectNotFound:
                listing = []  # no container: nothing in it
            plan, error = plan_folder(listing, source.prefix), None
            if len(plan.files) > MAX_FILES:
                plan, error = None, f"the input holds over {MAX_FILES} files"
            document = plan_document(
                plan,
                container=source.container,
                jid=request.jid,
                run=run,
                input_dirs=[source.prefix],
                output_dir=output.prefix,
                error=error,
            )
            document["allow_empty"] = request.type == "fs"  # an fs plugin's may be empty
            segments = segments_reader(swift, source.container)
            try:
                signed = sign_plan(document, signer, segments)
            except InputRefused as refused:
                document.update(files=[], error=str(refused))
                signed = sign_plan(document, signer, segments)
            name = write_plan(swift, self.bookkeeping, plan_name(request.jid, run), signed)
            self.create_output(swift, output)
            return publish_access(
                signer,
                output,
                plan=signer.url("GET", self.bookkeeping, name),
                service_url=self.settings.pman_service_url,
            )

    def _check_scope(self, source: Location, output: Location) -> None:
        """:class:`BadRequest` for a v6 job whose URLs would reach more than its own data: a
        whole container (no prefix to scope them by), pman's bookkeeping container (other
        jobs' plans and their URLs), or a ``_segments`` container (other outputs' parts)."""
        problems: dict[str, str] = {}
        if not output.prefix.strip("/"):
            problems["output_dir"] = (
                "must be a folder in a container (<container>/<folder>) with "
                "SWIFT_POD_CREDENTIALS=tempurl: a job's URLs would reach the whole container"
            )
        for field, location in (("input_dir", source), ("output_dir", output)):
            if location.container == self.bookkeeping:
                problems[field] = f"must not be in pman's own container {self.bookkeeping!r}"
            elif field == "output_dir" and location.container.endswith("_segments"):
                problems[field] = (
                    "must not be in a _segments container: the parts of large objects are "
                    "there, written by pman's jobs"
                )
        if problems:
            raise BadRequest(problems)

    @staticmethod
    def create_output(swift: SwiftSession, output: Location) -> None:
        """The containers the output and its large objects' segments go to: a temporary URL
        cannot create them."""
        swift.ensure_container(output.container)
        swift.ensure_container(f"{output.container}_segments")

    def delete_plan(self, jid: str, run: str) -> None:
        """Delete the stage-in plan of run ``run`` of ``jid`` (a job that was not created)."""
        try:
            with self.store.session() as swift:
                swift.delete_object(self.bookkeeping, plan_name(jid, run))
        except PmanError as error:
            log.warning("job %s: its stage-in plan was not deleted: %s", jid, error)

    def delete_plans(self, jid: str) -> None:
        """Delete the stage-in plans of every run of ``jid`` (they hold its URLs)."""
        delete_plans(self.store, self.bookkeeping, jid)


def write_plan(swift: SwiftSession, bookkeeping: str, name: str, document: dict[str, Any]) -> str:
    """Write a stage-in plan into the bookkeeping container (created if needed); its
    name."""
    data = json.dumps(document, separators=(",", ":")).encode()
    try:
        swift.put_small(bookkeeping, name, data, content_type="application/json")
    except ObjectNotFound:
        swift.ensure_container(bookkeeping)
        swift.put_small(bookkeeping, name, data, content_type="application/json")
    return name


def segments_reader(swift: SwiftSession, container: str) -> Callable[[str], list[dict[str, Any]]]:
    """The segments of a Static Large Object of ``container``, read from its manifest;
    :class:`InputRefused` when it vanished meanwhile."""

    def segments(name: str) -> list[dict[str, Any]]:
        try:
            return swift.slo_segments(container, name)
        except ObjectNotFound:
            raise InputRefused(
                f"the input object {name!r} vanished while the job was submitted"
            ) from None

    return segments


def delete_plans(store: Store, bookkeeping: str, jid: str) -> None:
    """Delete the stage-in plans of every run of ``jid``; a failure is only logged."""
    try:
        with store.session() as swift:
            for entry in swift.list_objects(bookkeeping, f"runs/{jid}/"):
                swift.delete_object(bookkeeping, entry["name"])
    except ObjectNotFound:
        pass
    except PmanError as error:
        log.warning("job %s: its stage-in plans were not deleted: %s", jid, error)


# -- the manifests of Static Large Objects, written for the publisher ------------------------


@dataclass(frozen=True)
class LargeObject:
    """A Static Large Object manifest to write, once its URLs were checked."""

    container: str
    name: str
    manifest: list[dict[str, Any]]
    etag: str


def check_large_object(
    body: Any, *, storage_url: str, keys: Sequence[str], now: float | None = None
) -> LargeObject:
    """The manifest ``body`` asks for (``object``: a PUT URL of the object; ``segments``:
    PUT URLs covering every segment; ``manifest``: the segments, ``path``, ``etag`` and
    ``size_bytes`` each; ``etag``: the MD5 of their ETags), once each URL is shown to be
    one pman signed (with one of ``keys``, for this account), not expired, allowing PUT of
    the object and of every segment; :class:`BadRequest` or :class:`Forbidden` else.

    The segments must be under the caller's own URLs: a manifest may point at any object of
    the account, and the object would then serve it to whoever can read the object (which
    is why Swift refuses ``X-Object-Manifest`` through a temporary URL)."""
    now = time.time() if now is None else now
    if not isinstance(body, dict):
        raise BadRequest("expected a JSON object with object, segments, manifest and etag")
    target = _checked(body.get("object"), "object", storage_url, keys, now)
    if target.path.endswith("/") or not target.covers(target.container, target.path):
        raise BadRequest({"object": "must be the URL of an object its signature covers"})
    raw = body.get("segments")
    if not isinstance(raw, list) or not raw or len(raw) > 100:
        raise BadRequest({"segments": "must be a list of the PUT URLs of the segments"})
    covering = [_checked(url, "segments", storage_url, keys, now) for url in raw]
    manifest = _manifest(body.get("manifest"), covering)
    etag = body.get("etag")
    if not isinstance(etag, str) or not _MD5.fullmatch(etag):
        raise BadRequest({"etag": "must be the MD5 (hexadecimal) of the segments' ETags"})
    joined = "".join(entry["etag"] for entry in manifest).encode()
    if hashlib.md5(joined, usedforsecurity=False).hexdigest() != etag:
        raise BadRequest({"etag": "is not the MD5 of the segments' ETags"})
    return LargeObject(target.container, target.path, manifest, etag)


def _checked(text: Any, field: str, storage_url: str, keys: Sequence[str], now: float) -> TempUrl:
    """A PUT temporary URL that pman signed for this account and that has not expired."""
    if not isinstance(text, str):
        raise BadRequest({field: "must be a temporary URL"})
    try:
        url = TempUrl.parse(text, "PUT")
    except NotATempUrl as error:
        raise BadRequest({field: f"is not a usable temporary URL: {error}"}) from None
    ours = Signer(storage_url, "", url.expires).account_path
    if Signer(url.storage_url, "", url.expires).account_path != ours:
        raise Forbidden(f"{field}: the temporary URL is not of this pman's Swift account")
    if url.expired(now):
        raise Forbidden(f"{field}: the temporary URL expired at {expiry(url.expires)}")
    for key in keys:
        signer = Signer(storage_url, key, url.expires)
        try:
            expected = signer.signature("PUT", url.container, url.name, prefix=url.prefix)
        except ValueError as error:  # what python-swiftclient cannot sign
            raise BadRequest({field: f"is not a usable temporary URL: {error}"}) from None
        if hmac.compare_digest(expected.encode(), url.signature.encode()):
            return url
    raise Forbidden(
        f"{field}: the temporary URL's signature is not good for PUT (not signed with the "
        "account's temp URL key, or the key has changed)"
    )


def _manifest(raw: Any, covering: list[TempUrl]) -> list[dict[str, Any]]:
    if not isinstance(raw, list) or not raw or len(raw) > MAX_SEGMENTS:
        raise BadRequest({"manifest": f"must list the segments (1 to {MAX_SEGMENTS})"})
    manifest = []
    for entry in raw:
        if not isinstance(entry, dict) or set(entry) != {"path", "etag", "size_bytes"}:
            raise BadRequest({"manifest": "each segment has path, etag and size_bytes only"})
        path, etag, size = entry["path"], entry["etag"], entry["size_bytes"]
        if not isinstance(path, str) or not isinstance(etag, str) or not _MD5.fullmatch(etag):
            raise BadRequest({"manifest": "a segment's path and etag must be strings"})
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise BadRequest({"manifest": "a segment's size_bytes must be a positive integer"})
        if has_dot_segment(path):
            raise BadRequest(
                {"manifest": "a segment's path has a '.' or '..' segment: it would name another"}
            )
        container, _, name = path.lstrip("/").partition("/")
        if not path.startswith("/") or not any(url.covers(container, name) for url in covering):
            raise Forbidden(
                f"the segment {path[:300]!r} is not under the temporary URLs given for them"
            )
        manifest.append({"path": path, "etag": etag, "size_bytes": size})
    return manifest
