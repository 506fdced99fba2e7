"""The Flask application: pman's REST API over HTTP.

``create_app()`` reads the settings from the environment unless it is given
them, connects to Kubernetes, starts the status cache's watches, and serves:

- ``GET|HEAD /api/v1/``, ``POST /api/v1/``, ``GET|DELETE /api/v1/<jid>/`` (the
  pman v6 contract);
- ``GET /api/v1/_jobs/`` (every job; ``_`` cannot occur in a jid), ``/openapi.json``,
  ``/healthz``, ``/readyz`` and ``/metrics``;
- the data routes under ``/api/v1/_data/`` (:mod:`pman.data`).
"""

from __future__ import annotations

import hmac
import json
import logging
import os
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from pman.cache import StatusCache
from pman.data import register_data_routes
from pman.errors import BadRequest, JobNotFound, PmanError, Unauthorized, UnsupportedMediaType
from pman.jobs import Jobs
from pman.kube import Kube
from pman.metrics import CONTENT_TYPE, Metrics
from pman.models import is_jid, parse_job_request
from pman.openapi import openapi_document
from pman.settings import Settings

log = logging.getLogger(__name__)
api = Blueprint("pman", __name__)
PUBLIC_ENDPOINTS = {"pman.healthz", "pman.readyz"}


class Pman:
    """What one app holds: settings, the job service and what it must close."""

    def __init__(self, settings: Settings, jobs: Jobs, metrics: Metrics) -> None:
        self.settings = settings
        self.jobs = jobs
        self.metrics = metrics
        self.openapi = openapi_document()

    def close(self) -> None:
        """Stop the watches and release Kubernetes connections."""
        if self.jobs.cache:
            self.jobs.cache.stop()
        self.jobs.kube.close()


def create_app(settings: Settings | None = None) -> Flask:
    """The pman WSGI application; settings from the environment when not given."""
    settings = settings or Settings.from_env(os.environ)
    metrics = Metrics()
    kube = Kube(settings, metrics=metrics)
    cache = StatusCache(kube) if settings.status_cache else None
    app = Flask("pman")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["pman"] = Pman(settings, Jobs(settings, kube, cache=cache), metrics)
    app.register_blueprint(api)
    register_data_routes(app)
    if cache:
        cache.start()
    return app


def _pman() -> Pman:
    return current_app.extensions["pman"]


@api.before_app_request
def _authenticate() -> None:
    token = _pman().settings.api_token
    if not token or request.endpoint in PUBLIC_ENDPOINTS:
        return
    given = request.headers.get("Authorization", "")
    scheme, _, credentials = given.partition(" ")
    expected = token.encode()
    if scheme.lower() != "bearer" or not hmac.compare_digest(credentials.encode(), expected):
        raise Unauthorized("this pman needs an 'Authorization: Bearer <token>' header")


@api.after_app_request
def _count(response: Response) -> Response:
    route = request.url_rule.rule if request.url_rule else "unmatched"
    _pman().metrics.http_requests.labels(route, request.method, str(response.status_code)).inc()
    return response


@api.get("/api/v1/")
def info() -> Any:
    return jsonify(_pman().jobs.info())


@api.post("/api/v1/")
def submit() -> Any:
    job_request = parse_job_request(_json_body())
    return jsonify(_pman().jobs.submit(job_request)), 201


@api.get("/api/v1/<jid>/")
def get_job(jid: str) -> Any:
    return jsonify(_pman().jobs.get(_known_jid(jid)))


@api.delete("/api/v1/<jid>/")
def delete_job(jid: str) -> Any:
    _pman().jobs.delete(_known_jid(jid))
    return "", 204


@api.get("/api/v1/_jobs/")
def list_jobs() -> Any:
    return jsonify({"jobs": _pman().jobs.list()})


@api.get("/openapi.json")
def openapi() -> Any:
    return jsonify(_pman().openapi)


@api.get("/healthz")
def healthz() -> Any:
    return Response("ok\n", mimetype="text/plain")


@api.get("/readyz")
def readyz() -> Any:
    _pman().jobs.ready()
    return Response("ok\n", mimetype="text/plain")


@api.get("/metrics")
def metrics() -> Any:
    return Response(_pman().metrics.exposition(), content_type=CONTENT_TYPE)


def _json_body() -> Any:
    if not request.is_json:
        raise UnsupportedMediaType("the request body must be JSON (Content-Type: application/json)")
    data = request.get_data(cache=False)
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    if request.content_length is None and len(data) >= limit:
        # A chunked body is cut at the limit rather than refused: refuse it here.
        raise RequestEntityTooLarge()
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as error:
        raise BadRequest(f"the request body is not valid JSON: {error}") from None


def _known_jid(jid: str) -> str:
    # A jid that could never have been accepted names no job; Kubernetes need not be asked.
    if not is_jid(jid):
        raise JobNotFound(f"no job {jid!r}")
    return jid


@api.app_errorhandler(PmanError)
def _pman_error(error: PmanError) -> Any:
    response = jsonify({"message": error.message})
    response.status_code = error.status
    if isinstance(error, Unauthorized):
        response.headers["WWW-Authenticate"] = "Bearer"
    return response


@api.app_errorhandler(HTTPException)
def _http_error(error: HTTPException) -> Any:
    if error.code is not None and error.code < 400:
        return error  # the 308 from /api/v1/<jid> to /api/v1/<jid>/
    if isinstance(error, RequestEntityTooLarge):
        limit = current_app.config["MAX_CONTENT_LENGTH"]
        message = f"the request body is larger than {limit} bytes"
    else:
        message = error.description or error.name
    response = error.get_response()
    response.set_data(json.dumps({"message": message}))
    response.content_type = "application/json"
    return response


@api.app_errorhandler(Exception)
def _unexpected(error: Exception) -> Any:
    log.exception("unexpected error answering %s %s", request.method, request.path)
    return jsonify({"message": f"internal error: {type(error).__name__}"}), 500
