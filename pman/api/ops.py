"""What operators and their tools ask of pman: liveness, readiness (Kubernetes answers),
Prometheus metrics and the OpenAPI document. Liveness and readiness need no token."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from pman.api.common import pman
from pman.metrics import CONTENT_TYPE

blueprint = Blueprint("ops", __name__)


@blueprint.get("/openapi.json")
def openapi() -> Any:
    return jsonify(pman().openapi)


@blueprint.get("/healthz")
def healthz() -> Any:
    return Response("ok\n", mimetype="text/plain")


@blueprint.get("/readyz")
def readyz() -> Any:
    pman().jobs.ready()
    return Response("ok\n", mimetype="text/plain")


@blueprint.get("/metrics")
def metrics() -> Any:
    return Response(pman().metrics.exposition(), content_type=CONTENT_TYPE)
