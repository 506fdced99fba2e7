"""The OpenAPI 3.1 document of pman's API, generated from the models that validate requests."""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import models_json_schema

from pman import __version__
from pman.models import ErrorBody, JobList, JobObject, JobRequest, ServerInfo

REF = "#/components/schemas/{model}"
ERRORS = {
    "400": "Invalid request: the message names every bad field.",
    "401": "Missing or wrong bearer token (only when a token is configured).",
    "403": "Kubernetes refused pman a permission; the message names it.",
    "404": "No such job.",
    "405": "Method not allowed on this path.",
    "409": "A job with this jid already exists.",
    "413": "Request body too large.",
    "415": "The body is not declared as application/json.",
    "502": "Kubernetes gave an answer pman did not expect.",
    "503": "The Kubernetes API is unreachable or failing.",
}


def openapi_document() -> dict[str, Any]:
    """The whole document, ready to serve as JSON."""
    models = [(m, "validation") for m in (JobRequest,)]
    models += [(m, "serialization") for m in (JobObject, ServerInfo, JobList, ErrorBody)]
    _, definitions = models_json_schema(models, ref_template=REF)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "pman",
            "version": __version__,
            "description": "Runs container jobs on Kubernetes with data in OpenStack Swift.",
        },
        "paths": _paths(),
        "components": {
            "schemas": definitions["$defs"],
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{}, {"bearer": []}],
    }


def _paths() -> dict[str, Any]:
    jid = {
        "name": "jid",
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
        "description": "The job id given at submission.",
    }
    return {
        "/api/v1/": {
            "get": _operation("Server information", "200", "ServerInfo"),
            "head": _operation("Readiness probe", "200", None),
            "post": {
                **_operation("Submit a job", "201", "Job", errors=("400", "409", "413", "415")),
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("JobRequest")}},
                },
            },
        },
        "/api/v1/{jid}/": {
            "parameters": [jid],
            "get": _operation("A job's status and logs", "200", "Job", errors=("404",)),
            "delete": _operation("Delete a job", "204", None, errors=("404",)),
        },
        "/api/v1/_jobs/": {"get": _operation("Every job", "200", "JobList")},
        "/healthz": {"get": _plain("The process is alive", public=True)},
        "/readyz": {"get": _plain("Kubernetes is reachable", public=True)},
        "/metrics": {"get": _plain("Prometheus metrics")},
    }


def _operation(
    summary: str, code: str, schema: str | None, *, errors: tuple[str, ...] = ()
) -> dict[str, Any]:
    ok: dict[str, Any] = {"description": summary}
    if schema:
        ok["content"] = {"application/json": {"schema": _ref(schema)}}
    responses = {code: ok}
    for error in ("401", "403", "405", "502", "503", *errors):
        responses[error] = {
            "description": ERRORS[error],
            "content": {"application/json": {"schema": _ref("Error")}},
        }
    return {"summary": summary, "responses": responses}


def _plain(summary: str, *, public: bool = False) -> dict[str, Any]:
    text = {"text/plain": {"schema": {"type": "string"}}}
    error = {"application/json": {"schema": _ref("Error")}}
    operation: dict[str, Any] = {
        "summary": summary,
        "responses": {
            "200": {"description": summary, "content": text},
            "401": {"description": ERRORS["401"], "content": error},
            "503": {"description": ERRORS["503"], "content": error},
        },
    }
    if public:
        operation["security"] = [{}]
    return operation


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(model=name)}
