"""The pfcon v6 API (PFCON-API.md), under a base of its own (``PFCON_BASE_PATH``, default
``/pfcon/api/v1/``): pman as a ChRIS compute resource that needs neither a copy nor an
upload job. Served only when ``PFCON_USER`` and ``PFCON_PASSWORD`` are set.

Its routes have their own authentication, pfcon's: ``auth-token/`` hands out a JWT
(HS256, two days, signed with ``PFCON_SECRET_KEY``) that every route but ``health/`` and
``auth-token/`` wants as ``Authorization: Bearer``; pman's own token does not apply here.
Bodies are forms with repeated fields; job objects are ``{"compute": {...}}`` with pfcon's
status spelling. The jobs themselves are :mod:`pman.pfconjobs`'.
"""

from __future__ import annotations

import hmac
import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote

import jwt
from flask import Blueprint, Flask, current_app, jsonify, request, send_file
from werkzeug.exceptions import RequestEntityTooLarge

from pman.api.common import known_jid, pman
from pman.errors import BadRequest, JobNotFound, Unauthorized, UnsupportedMediaType
from pman.models import is_jid
from pman.pfconjobs import PfconJobRequest, PfconJobs
from pman.settings import Settings
from pman.status import NOT_STARTED

TOKEN_LIFETIME = timedelta(days=2)
ALGORITHM = "HS256"
FORMS = {"application/x-www-form-urlencoded", "multipart/form-data"}
LIST_FIELDS = {"args", "args_path_flags", "entrypoint", "env", "input_dirs"}
SCALAR_FIELDS = set(PfconJobRequest.model_fields) - LIST_FIELDS
PUBLIC = {"pfcon.health", "pfcon.auth_token"}
NEEDS_NEITHER = (
    "this compute resource stages the input in and publishes the output within each plugin "
    "job's pod (its server info says requires_copy_job and requires_upload_job are false): "
    "it needs no {kind} job. Register it in CUBE with both flags false"
)
DELETE_SKIPPED = {"image": "", "cmd": "", "status": "finishedSuccessfully"}

Obj = dict[str, Any]


class _Blueprint(Blueprint):
    """Registered under the app's ``PFCON_BASE_PATH``, and only when the API is on."""

    def register(self, app: Flask, options: dict[str, Any]) -> None:
        held = app.extensions.get("pman")
        settings: Settings = held.settings if held else Settings(pfcon_user="-", pfcon_password="-")
        if settings.pfcon_enabled:  # an app of no pman's (a tool listing the routes): served
            super().register(app, {**options, "url_prefix": settings.pfcon_base.rstrip("/")})


blueprint = _Blueprint("pfcon", __name__)


def _jobs() -> PfconJobs:
    jobs = pman().pfcon
    assert jobs is not None  # the blueprint is registered only with the API on
    return jobs


def _settings() -> Settings:
    return pman().settings


# -- authentication ---------------------------------------------------------------------------


@blueprint.before_request
def _authenticate() -> None:
    if request.endpoint in PUBLIC:
        return
    header = request.headers.get("Authorization")
    if not header:
        raise Unauthorized("Missing authorization header.")
    if not header.startswith("Bearer "):
        raise Unauthorized("Invalid authorization header.")
    settings = _settings()
    try:
        claims = jwt.decode(
            header.split(" ", 1)[1],
            settings.pfcon_secret_key,
            algorithms=[ALGORITHM],
            options={"require": ["exp"]},
        )
    except jwt.ExpiredSignatureError:
        raise Unauthorized("Expired authorization token.") from None
    except jwt.InvalidTokenError:
        raise Unauthorized("Invalid authorization token.") from None
    if claims.get("pfcon_user") != settings.pfcon_user:
        raise Unauthorized("Invalid authorization token.")


@blueprint.post("/auth-token/")
def auth_token() -> Any:
    """pfcon's login: its user and password (JSON, or a form) for a token."""
    given = _login_fields()
    settings = _settings()
    user_ok = hmac.compare_digest(given["pfcon_user"].encode(), settings.pfcon_user.encode())
    password = settings.pfcon_password or ""
    password_ok = hmac.compare_digest(given["pfcon_password"].encode(), password.encode())
    if not (user_ok and password_ok):
        raise BadRequest("Unable to log in with provided credentials.")
    claims = {"pfcon_user": settings.pfcon_user, "exp": datetime.now(UTC) + TOKEN_LIFETIME}
    return jsonify({"token": jwt.encode(claims, settings.pfcon_secret_key, algorithm=ALGORITHM)})


def _login_fields() -> dict[str, str]:
    if request.is_json:
        try:
            body = json.loads(request.get_data(cache=False) or b"null")
        except (ValueError, RecursionError):
            raise BadRequest("the request body is not valid JSON") from None
        body = body if isinstance(body, dict) else {}
    else:
        body = request.form.to_dict()
    fields = {name: body.get(name) for name in ("pfcon_user", "pfcon_password")}
    missing = {name: "is required" for name, value in fields.items() if not isinstance(value, str)}
    if missing:
        raise BadRequest(missing)
    return fields  # type: ignore[return-value]


@blueprint.get("/health/")
def health() -> Any:
    return jsonify({"health": "OK"})


# -- server info ------------------------------------------------------------------------------


def server_info() -> Obj:
    """What every list route answers to GET; CUBE reads the two ``requires_*`` flags."""
    settings = _settings()
    store = pman().store
    return {
        "server_version": settings.server_version,
        "pfcon_innetwork": True,
        "storage_env": "swift",
        "requires_copy_job": False,
        "requires_upload_job": False,
        "container_env": settings.container_env,
        # No shared volume: each job's pod has an emptyDir of its own.
        "compute_volume_type": "emptyDir",
        "swift_auth_url": store.credentials.auth_url if store else "",
    }


@blueprint.get("/pluginjobs/")
@blueprint.get("/copyjobs/")
@blueprint.get("/uploadjobs/")
@blueprint.get("/deletejobs/")
def info() -> Any:
    return jsonify(server_info())


# -- plugin jobs ------------------------------------------------------------------------------


@blueprint.post("/pluginjobs/")
def submit() -> Any:
    obj = _jobs().submit(PfconJobRequest.parse(*_form_fields()))
    return jsonify({"data": {}, "compute": compute(obj)}), 201


@blueprint.get("/pluginjobs/<jid>/")
def get_job(jid: str) -> Any:
    known_jid(jid)
    return jsonify({"compute": compute(_jobs().status(jid))})


@blueprint.delete("/pluginjobs/<jid>/")
def delete_job(jid: str) -> Any:
    if is_jid(jid):
        _jobs().delete(jid)
    return "", 204


@blueprint.get("/pluginjobs/<jid>/file/")
def output_files(jid: str) -> Any:
    known_jid(jid)
    path = _raw_query_value("job_output_path")
    if path is None:
        raise BadRequest({"job_output_path": "query parameter is required"})
    files = _jobs().output_files(jid, path)
    body = json.dumps({"job_output_path": path, "rel_file_paths": files}).encode()
    return send_file(
        io.BytesIO(body),
        mimetype="application/json",
        as_attachment=True,
        download_name=f"{jid}.json",
    )


def _raw_query_value(name: str) -> str | None:
    """A query parameter as the client wrote it, percent-decoded but with ``+`` kept: CUBE
    appends the path unencoded, and checks that the answer echoes it exactly (a user name
    may hold a ``+``)."""
    for item in request.query_string.decode("latin-1").split("&"):
        key, sep, value = item.partition("=")
        if sep and unquote(key) == name:
            return unquote(value, encoding="utf-8", errors="replace")
    return None


def _form_fields() -> tuple[dict[str, Any], dict[str, str]]:
    """The form's fields (lists for the repeated ones) and the fields given more than once
    that may not be."""
    if request.mimetype not in FORMS:
        raise UnsupportedMediaType(
            "the request body must be a form (application/x-www-form-urlencoded or "
            "multipart/form-data) with list fields repeated, as pfcon takes it"
        )
    if request.content_length is None:
        # A chunked body is cut at the limit rather than refused: refuse it here.
        data = request.get_data(cache=True)
        if len(data) >= current_app.config["MAX_CONTENT_LENGTH"]:
            raise RequestEntityTooLarge()
    form = request.form
    body: dict[str, Any] = {}
    twice: dict[str, str] = {}
    for name in form:
        values = form.getlist(name)
        if name in LIST_FIELDS:
            body[name] = values
        elif name in SCALAR_FIELDS and len(values) > 1:
            twice[name] = "must be given once"
        else:
            body[name] = values[0]
    return body, twice


def compute(obj: Obj) -> Obj:
    """A pman job object as pfcon's ``compute`` object (its status spelling)."""
    status = obj["status"]
    return {
        "jid": obj["jid"],
        "image": obj["image"],
        "cmd": obj["cmd"],
        "status": "notStarted" if status == NOT_STARTED else status,
        "message": obj["message"],
        "timestamp": obj["timestamp"],
        "logs": obj["logs"],
    }


# -- copy, upload and delete jobs -------------------------------------------------------------


@blueprint.post("/copyjobs/")
@blueprint.post("/uploadjobs/")
def refuse_job() -> Any:
    raise BadRequest(NEEDS_NEITHER.format(kind=_kind()))


@blueprint.get("/copyjobs/<jid>/")
@blueprint.get("/uploadjobs/<jid>/")
def no_job(jid: str) -> Any:
    raise JobNotFound(f"no {_kind()} job {jid!r}: " + NEEDS_NEITHER.format(kind=_kind()))


@blueprint.delete("/copyjobs/<jid>/")
@blueprint.delete("/uploadjobs/<jid>/")
@blueprint.delete("/deletejobs/<jid>/")
def delete_other(jid: str) -> Any:
    return "", 204


@blueprint.post("/deletejobs/")
def submit_delete() -> Any:
    """Nothing to delete: the data of a job lives in its pod's emptyDir, gone with it."""
    body, twice = _form_fields()
    jid = body.get("jid")
    problems = dict(twice)
    if not isinstance(jid, str) or not is_jid(jid.removeprefix("/")):
        problems.setdefault("jid", "is required, a DNS-1123 label such as chris-jid-42")
    if problems:
        raise BadRequest(problems)
    return jsonify({"compute": delete_skipped(jid.removeprefix("/"))}), 201


@blueprint.get("/deletejobs/<jid>/")
def get_delete(jid: str) -> Any:
    known_jid(jid)
    return jsonify({"compute": delete_skipped(jid)})


def delete_skipped(jid: str) -> Obj:
    """pfcon's answer for a delete job with nothing to delete: finished at once."""
    return {"jid": jid, **DELETE_SKIPPED, "message": "deleteSkipped", "timestamp": "", "logs": ""}


def _kind() -> str:
    return request.path.removeprefix(_settings().pfcon_base).split("/", 1)[0].removesuffix("jobs")
