"""What the pfcon API (:mod:`pman.api.pfcon`) does with jobs, over the job service.

A pfcon job is a pman job whose data is in CUBE's Swift container: when it is submitted,
pman lists its ``input_dirs`` there, follows the ChRIS links (:mod:`pman.stagein`) and
writes the stage-in plan where CUBE never looks (the bookkeeping container); the pod stages
in exactly that plan and publishes into ``output_dir``, its manifest going to the
bookkeeping container too. So nothing but the plugin's files ever lands under
``output_dir``, and the file list CUBE registers is the manifest's.

Bookkeeping container layout: ``runs/<jid>/<run>/stage-in.json`` (one plan per run),
``outputs/<output_dir>/manifest.json`` (the manifest of the output, replaced by each run).
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictStr, ValidationError

from pman.errors import (
    BadRequest,
    JobExists,
    JobNotFound,
    ObjectNotFound,
    OutputNotReady,
    PmanError,
    RunEnding,
    StoreError,
    StoreUnavailable,
)
from pman.jobspec import (
    FRONT_END_LABEL,
    MANIFEST_ANNOTATION,
    OUTPUT_ANNOTATION,
    PFCON_FRONT_END,
    SignedAccess,
    build_pfcon_job,
    new_run,
    pick_user,
    run_of,
)
from pman.models import (
    Auid,
    EnvItem,
    Gpus,
    Image,
    Jid,
    JobRequest,
    JobType,
    Mebibytes,
    Millicores,
    Text,
    Workers,
    field_messages,
)
from pman.pod import MANIFEST_FORMAT, MAX_MANIFEST_BYTES
from pman.service import JobService, Lru
from pman.settings import Settings
from pman.stagein import (
    InputRefused,
    Listed,
    Plan,
    clean_path,
    plan_document,
    plan_stage_in,
)
from pman.status import FAILED, STARTED, SUCCEEDED, UNDEFINED
from pman.swift import Location, Store, SwiftSession
from pman.tempurls import (
    TempUrls,
    delete_plans,
    plan_name,
    publish_access,
    segments_reader,
    sign_plan,
    write_plan,
)

log = logging.getLogger(__name__)
Obj = dict[str, Any]

MAX_FOLDER = 700
"""Characters of an ``input_dirs`` or ``output_dir`` path: with the container's name it is a
pman job's ``<container>/<prefix>``, at most 1024."""
MAX_ITEMS = 1000
"""Values of one repeated field."""
REPLACE_MARGIN = 5
"""Seconds beyond JOB_GRACE_SECONDS that an idempotent POST waits for a failed run's pods."""
REPLACE_LIMIT = 120
"""At most this long, well inside the 200 s CUBE waits for a POST."""
POLL = 0.25


def _check_folder(value: str) -> str:
    if len(value) > MAX_FOLDER:
        raise ValueError(f"must be at most {MAX_FOLDER} characters")
    folder = clean_path(value.lstrip("/"))
    if folder is None:
        raise ValueError(
            "must be a folder in CUBE's Swift container such as home/alice/feeds/feed_1/"
            "pl-app_1/data: not empty, without empty, '.' or '..' segments"
        )
    return folder


Folder = Annotated[StrictStr, AfterValidator(_check_folder)]


def _items(kind: Any) -> Any:
    return Annotated[list[kind], Field(max_length=MAX_ITEMS)]


class PfconJobRequest(BaseModel):
    """A ``POST pluginjobs/`` form, its repeated fields as lists (PFCON-API.md)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    jid: Jid
    args: _items(Text) = []
    args_path_flags: _items(Text) = []
    auid: Auid
    number_of_workers: Workers
    cpu_limit: Millicores
    memory_limit: Mebibytes
    gpu_limit: Gpus
    image: Image
    entrypoint: Annotated[list[Text], Field(min_length=1, max_length=MAX_ITEMS)]
    type: JobType
    env: _items(EnvItem) = []
    input_dirs: _items(Folder) = []
    output_dir: Folder

    @classmethod
    def parse(cls, body: dict[str, Any], problems: dict[str, str] | None = None) -> Any:
        """Validate a form's fields; :class:`BadRequest` naming every bad field (with
        ``problems`` found before, such as a field given twice)."""
        problems = dict(problems or {})
        try:
            request = cls.model_validate({k: v for k, v in body.items() if k not in problems})
        except ValidationError as error:
            problems = {**field_messages(error), **problems}
            request = None
        if problems:
            raise BadRequest(problems)
        return request

    def job_request(self, *, container: str, plan: str) -> JobRequest:
        """The pman job request: its input described by the plan, its output in CUBE's
        container (the fields are valid already)."""
        fields = self.model_dump(exclude={"input_dirs", "output_dir"})
        return JobRequest.model_construct(
            **fields, input_dir=plan, output_dir=f"{container}/{self.output_dir}"
        )


class PfconJobs:
    """Submit, report, list the output of and delete the jobs of the pfcon API."""

    def __init__(
        self,
        settings: Settings,
        jobs: JobService,
        store: Store,
        *,
        tempurls: TempUrls | None = None,
    ) -> None:
        self.settings = settings
        self.jobs = jobs
        self.store = store
        self.tempurls = tempurls
        """With ``SWIFT_POD_CREDENTIALS=tempurl``: the plan holds the URLs of its objects,
        and the pod those of its plan and output."""
        self.container = settings.swift_container_name
        self.bookkeeping = settings.bookkeeping_container
        # Confirmed file lists, by (Job uid, run).
        self._published: Lru[tuple[str, str], list[str]] = Lru(capacity=256)

    # -- submit ------------------------------------------------------------------------------

    def submit(self, request: PfconJobRequest) -> Obj:
        """The job object of ``request.jid``: the existing job's unless it failed (or is
        undefined), else a new run's (pfcon's idempotent POST)."""
        jid = request.jid
        existing = self._existing(jid)
        if existing is not None:
            obj, job = existing
            if obj["status"] not in (FAILED, UNDEFINED):
                return obj
            log.info("job %s is %s: scheduling it again", jid, obj["status"])
            with contextlib.suppress(JobNotFound):
                self.jobs.delete(jid)
        self._wait_until_gone(jid, replacing=existing is not None)
        run = new_run()
        plan, access = self._write_plan(request, run)
        uid, gid = pick_user(self.settings.container_user)
        job = build_pfcon_job(
            request.job_request(container=self.container, plan=plan),
            self.settings,
            run=run,
            plan=plan,
            manifest=f"{self.bookkeeping}/{manifest_name(request.output_dir)}",
            uid=uid,
            gid=gid,
            access=access,
        )
        try:
            return self.jobs.create(job)
        except RunEnding:
            raise
        except JobExists:
            # Another POST of the same jid (a client retrying) created it meanwhile.
            return self.status(jid)

    def _existing(self, jid: str) -> tuple[Obj, Obj] | None:
        try:
            obj, job, _ = self.jobs.report(jid)
        except JobNotFound:
            return None
        if not is_pfcon(job):
            raise JobExists(
                f"a job {jid!r} exists that was submitted through pman's own API (/api/v1/)"
            )
        return self._confirmed(obj, job), job

    def _wait_until_gone(self, jid: str, *, replacing: bool) -> None:
        """Until no pod of an earlier run of ``jid`` is left (they may still publish), for
        a few seconds beyond the pods' grace period at most; :class:`RunEnding` after."""
        seconds = min(self.settings.job_grace_seconds + REPLACE_MARGIN, REPLACE_LIMIT)
        deadline = time.monotonic() + seconds
        while pods := self.jobs.all_pods(jid):
            if time.monotonic() >= deadline:
                what = "failed and was removed" if replacing else "was deleted"
                raise RunEnding(
                    f"job {jid!r} {what}, but {len(pods)} of its pods are still ending after "
                    f"{seconds} s: submit it again once they are gone"
                )
            time.sleep(POLL)

    def _write_plan(self, request: PfconJobRequest, run: str) -> tuple[str, SignedAccess | None]:
        """Plan the stage-in, write the plan; its ``container/object``, and with temporary
        URLs what the pod is given. A refused input is planned as the refusal: the job then
        fails with its reason, not the POST."""
        name = plan_name(request.jid, run)
        with self.store.session() as swift:
            source = _CubeContainer(swift, self.container)
            try:
                plan = plan_stage_in(request.input_dirs, request.output_dir, source)
                error = None
            except InputRefused as refused:
                log.info("job %s: its input is refused: %s", request.jid, refused)
                plan, error = None, str(refused)

            def document(plan: Plan | None, error: str | None) -> dict[str, Any]:
                return plan_document(
                    plan,
                    container=self.container,
                    jid=request.jid,
                    run=run,
                    input_dirs=request.input_dirs,
                    output_dir=request.output_dir,
                    error=error,
                )

            if self.tempurls is None:
                write_plan(swift, self.bookkeeping, name, document(plan, error))
                return f"{self.bookkeeping}/{name}", None
            signer = self.tempurls.signer(swift)
            segments = segments_reader(swift, self.container)
            try:
                signed = sign_plan(document(plan, error), signer, segments)
            except InputRefused as refused:
                signed = sign_plan(document(None, str(refused)), signer, segments)
            write_plan(swift, self.bookkeeping, name, signed)
            output = Location(self.container, request.output_dir)
            self.tempurls.create_output(swift, output)
            access = publish_access(
                signer,
                output,
                plan=signer.url("GET", self.bookkeeping, name),
                manifest=(self.bookkeeping, manifest_name(request.output_dir)),
                service_url=self.settings.pman_service_url,
            )
        return f"{self.bookkeeping}/{name}", access

    # -- report ------------------------------------------------------------------------------

    def status(self, jid: str) -> Obj:
        """The job object; :class:`JobNotFound` for a jid the pfcon API did not submit."""
        obj, job, _ = self.jobs.report(jid)
        if not is_pfcon(job):
            raise JobNotFound(f"no job {jid!r}")
        return self._confirmed(obj, job)

    def _confirmed(self, obj: Obj, job: Obj) -> Obj:
        """``obj``, finished successfully only once its run's manifest says its output is
        complete (CUBE registers the listed files as soon as it sees that status)."""
        if obj["status"] != SUCCEEDED:
            return obj
        try:
            self.published(job)
        except StoreUnavailable as error:
            log.warning("job %s: cannot read its manifest yet: %s", obj["jid"], error)
            message = "finished; confirming its published output in Swift"
            return {**obj, "status": STARTED, "phase": "publishing", "message": message}
        except _NotPublished as missing:
            return {**obj, "status": FAILED, "reason": "PublishFailed", "message": str(missing)}
        return obj

    def output_files(self, jid: str, job_output_path: str) -> list[str]:
        """The output's files relative to ``output_dir``, as the current run's manifest
        lists them; ``job_output_path`` must name the job's output."""
        obj, job, state = self.jobs.report(jid, logs=False)
        if not is_pfcon(job):
            raise JobNotFound(f"no job {jid!r}")
        output = _output_dir(job)
        asked = clean_path(job_output_path.lstrip("/"))
        if asked is None:
            raise BadRequest({"job_output_path": "must be a folder path, without '.' or '..'"})
        if asked != output:
            raise BadRequest({"job_output_path": f"is not the output_dir of job {jid!r}"})
        if not state.finished:
            raise OutputNotReady(
                f"the output of job {jid!r} is not published yet: it is {obj['status']}"
            )
        try:
            return self.published(job)
        except _NotPublished as missing:
            if state.status == FAILED:
                return []  # it failed before its output was published: nothing to register
            raise StoreError(str(missing)) from None

    def published(self, job: Obj) -> list[str]:
        """The files the manifest of ``job``'s run lists; :class:`_NotPublished` when there is
        no complete one of this run."""
        meta = job["metadata"]
        key = (meta.get("uid", ""), run_of(job) or "")
        if (files := self._published.get(key)) is not None:
            return files
        location = (meta.get("annotations") or {}).get(MANIFEST_ANNOTATION, "")
        container, _, name = location.partition("/")
        with self.store.session() as swift:
            try:
                raw = swift.read_object(container, name, limit=MAX_MANIFEST_BYTES)
            except ObjectNotFound:
                raise _NotPublished(
                    f"the job ended but its output manifest ({location}) is missing"
                ) from None
        files = _listed_files(raw, location, run_of(job), self.container, _output_dir(job))
        self._published.put(key, files)
        return files

    # -- delete ------------------------------------------------------------------------------

    def delete(self, jid: str) -> None:
        """Delete the job and its pods (running ones are stopped) and its stage-in plans;
        nothing for a jid the pfcon API does not know."""
        try:
            job = self.jobs.job(jid)
        except JobNotFound:
            return
        if not is_pfcon(job):
            return
        try:
            self.jobs.delete(jid)
        except JobNotFound:
            return
        delete_plans(self.store, self.bookkeeping, jid)


def manifest_name(output_dir: str) -> str:
    """The object, in the bookkeeping container, of the manifest of ``output_dir``."""
    return f"outputs/{output_dir}/manifest.json"


def is_pfcon(job: Obj) -> bool:
    """Whether the pfcon API submitted ``job``."""
    labels = (job.get("metadata") or {}).get("labels") or {}
    return labels.get(FRONT_END_LABEL) == PFCON_FRONT_END


def _output_dir(job: Obj) -> str:
    """The job's ``output_dir`` (its Job records ``<CUBE's container>/<output_dir>``)."""
    annotations = (job.get("metadata") or {}).get("annotations") or {}
    return annotations.get(OUTPUT_ANNOTATION, "").partition("/")[2]


class _NotPublished(PmanError):
    """No complete manifest of the job's run."""

    status = 502


def _listed_files(
    raw: bytes, location: str, run: str | None, container: str, output: str
) -> list[str]:
    """The paths a manifest lists; :class:`_NotPublished` unless it is complete, of ``run``,
    and describes ``container``/``output`` (a manifest is trusted with nothing else)."""
    try:
        document = json.loads(raw)
    except ValueError:
        raise _NotPublished(f"the output manifest {location} is not JSON") from None
    if (
        not isinstance(document, dict)
        or not str(document.get("format", "")).startswith(MANIFEST_FORMAT)
        or document.get("complete") is not True
        or not isinstance(document.get("files"), list)
    ):
        raise _NotPublished(f"the output manifest {location} is not complete")
    if document.get("run") != run:
        raise _NotPublished(f"the output manifest {location} is not this run's: not published")
    if document.get("container") != container or document.get("prefix") != output:
        raise _NotPublished(f"the output manifest {location} describes another output")
    paths = []
    for item in document["files"]:
        path = item.get("path") if isinstance(item, dict) else None
        if not isinstance(path, str) or clean_path(path) != path:
            raise _NotPublished(f"the output manifest {location} lists an unusable path")
        if item.get("object") != f"{output}/{path}":
            raise _NotPublished(f"the output manifest {location} lists a file elsewhere")
        paths.append(path)
    return paths


class _CubeContainer:
    """CUBE's container as the stage-in planner reads it, through one Swift session."""

    def __init__(self, swift: SwiftSession, container: str) -> None:
        self.swift = swift
        self.name = container

    def folder(self, prefix: str) -> list[Listed]:
        return [_listed(entry) for entry in self._list(prefix)]

    def file(self, name: str) -> Listed | None:
        found = self._list(name, limit=1)
        return _listed(found[0]) if found and found[0].get("name") == name else None

    def read(self, name: str, *, limit: int) -> bytes:
        try:
            return self.swift.read_object(self.name, name, limit=limit)
        except ObjectNotFound:
            raise InputRefused(f"the ChRIS link {name!r} vanished while it was read") from None

    def _list(self, prefix: str, *, limit: int | None = None) -> list[Obj]:
        try:
            return self.swift.list_objects(self.name, prefix, limit=limit)
        except ObjectNotFound:
            return []  # no container yet: nothing in it


def _listed(entry: Obj) -> Listed:
    return Listed(
        name=entry["name"],
        etag=str(entry.get("hash", "")).strip('"'),
        size=int(entry.get("bytes", 0)),
        slo_etag=str(entry.get("slo_etag") or "").strip('"'),
    )
