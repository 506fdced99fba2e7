"""What operators and their tools ask of pman: liveness, readiness (Kubernetes answers),
Prometheus metrics and the OpenAPI document. Liveness and readiness need no token."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, jsonify

from pman.api.common import pman
from pman.errors import ClusterUnavailable, ClusterUnreachable, Forbidden, NotReady, PmanError
from pman.jobspec import SELECTOR
from pman.metrics import CONTENT_TYPE

log = logging.getLogger(__name__)
blueprint = Blueprint("ops", __name__)


@blueprint.get("/openapi.json")
def openapi() -> Any:
    return jsonify(pman().openapi)


@blueprint.get("/healthz")
def healthz() -> Any:
    return Response("ok\n", mimetype="text/plain")


@blueprint.get("/readyz")
def readyz() -> Any:
    jobs = pman().jobs
    try:
        jobs.ready()
    except PmanError as error:
        # Probes need no token: where pman looked goes to its log, not to the answer.
        log.warning(
            "not ready: listing jobs (%s) in namespace %s at %s failed: %s (%s)",
            SELECTOR,
            jobs.kube.namespace,
            jobs.kube.host,
            error,
            error.__cause__ or "no further detail",
        )
        raise NotReady(f"not ready: {_what_is_not_ready(error)}") from error
    return Response("ok\n", mimetype="text/plain")


def _what_is_not_ready(error: PmanError) -> str:
    if isinstance(error, ClusterUnreachable):
        return "Kubernetes API unreachable"
    if isinstance(error, ClusterUnavailable):
        return "Kubernetes API unavailable"
    if isinstance(error, Forbidden):
        return "Kubernetes API refuses pman"
    return "Kubernetes API answers unexpectedly"


@blueprint.get("/metrics")
def metrics() -> Any:
    return Response(pman().metrics.exposition(), content_type=CONTENT_TYPE)
