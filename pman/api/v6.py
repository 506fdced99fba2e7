"""The pman v6 REST contract: server info, submit, status, delete (``/api/v1/``), and the
list of every job (``/api/v1/_jobs/``; ``_`` cannot occur in a jid, so it hides none)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify

from pman.api.common import json_body, known_jid, pman
from pman.models import parse_job_request

blueprint = Blueprint("v6", __name__)


@blueprint.get("/api/v1/")
def info() -> Any:
    return jsonify(pman().jobs.info())


@blueprint.post("/api/v1/")
def submit() -> Any:
    volume_storage = pman().settings.volume_storage
    job_request = parse_job_request(json_body(), volume_storage=volume_storage)
    return jsonify(pman().jobs.submit(job_request)), 201


@blueprint.get("/api/v1/<jid>/")
def get_job(jid: str) -> Any:
    return jsonify(pman().jobs.get(known_jid(jid)))


@blueprint.delete("/api/v1/<jid>/")
def delete_job(jid: str) -> Any:
    pman().jobs.delete(known_jid(jid))
    return "", 204


@blueprint.get("/api/v1/_jobs/")
def list_jobs() -> Any:
    return jsonify({"jobs": pman().jobs.list()})
