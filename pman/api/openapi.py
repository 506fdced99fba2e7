"""The OpenAPI 3.1 document of pman's API, generated from the models that validate requests."""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import models_json_schema

from pman import __version__
from pman.models import (
    PATH_JID_PATTERN,
    ErrorBody,
    JobList,
    JobObject,
    JobRequest,
    ServerInfo,
    UploadResult,
)
from pman.uploads import UploadStatus

REF = "#/components/schemas/{model}"
ERRORS = {
    "400": "Invalid request: the message names every bad field.",
    "401": "Missing or wrong bearer token (only when a token is configured).",
    "403": "Kubernetes refused pman a permission; the message names it.",
    "404": "No such job.",
    "405": "Method not allowed on this path.",
    "409": "A job with this jid already exists, or the pods of its deleted run are still "
    "ending (submit it again once they are gone).",
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
    definitions["$defs"]["UploadResult"] = UploadResult.model_json_schema(ref_template=REF)
    definitions["$defs"]["UploadStatus"] = UploadStatus.model_json_schema(ref_template=REF)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "pman",
            "version": __version__,
            "description": "Runs container jobs on Kubernetes with data in OpenStack Swift.",
        },
        "paths": {**_paths(), **_data_paths()},
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


DATA_ERRORS = {
    "400": "A jid that is not a DNS-1123 label (upload), a bad archive or format; the message "
    "names the refused entry (a path leaving the destination, a link, a special file, a "
    "duplicate, a path that is both a file and a directory).",
    "401": ERRORS["401"],
    "403": ERRORS["403"],
    "404": "No such job and no published output (download); no upload stored in the "
    "background (upload status).",
    "405": ERRORS["405"],
    "409": "The job exists but its output is not published (yet), or pman runs with a volume "
    "STORAGE_TYPE (kubernetes_pvc, host), where the client reads and writes the storeBase "
    "itself: the message names the mode.",
    "413": "The body, or the files in it, exceed PMAN_MAX_DATA_SIZE.",
    "415": "The body is not a tar, zip or multipart/form-data upload.",
    "502": "Swift or Kubernetes gave an answer pman did not expect, or the published "
    "manifest does not match the objects in Swift (download).",
    "503": "No Swift is configured, or Swift or Kubernetes is unreachable, failing or does "
    "not answer within PMAN_SWIFT_TIMEOUT.",
    "507": "pman's temporary disk, where an upload waits while it is checked, is full; the "
    "message says how much room the upload needs.",
}
BINARY = {"schema": {"type": "string", "format": "binary"}}


def _data_paths() -> dict[str, Any]:
    jid = {
        "name": "jid",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": PATH_JID_PATTERN, "maxLength": 63},
        "description": "The job id: a DNS-1123 label, as the job was or will be submitted.",
    }
    upload_errors = ("400", "409", "413", "415", "507")
    return {
        "/api/v1/_data/{jid}/input/": {
            "parameters": [jid],
            "post": {
                "summary": "Upload a job's input into Swift, under its input_dir",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/x-tar": BINARY,
                        "application/gzip": BINARY,
                        "application/zip": BINARY,
                        "multipart/form-data": {
                            "schema": {
                                "type": "object",
                                "additionalProperties": {"type": "string", "format": "binary"},
                            }
                        },
                    },
                },
                "responses": {
                    "201": {
                        "description": "Every file was written to Swift.",
                        "content": {"application/json": {"schema": _ref("UploadResult")}},
                    },
                    "202": {
                        "description": "Every file was accepted, and they were not all in Swift "
                        "after PMAN_UPLOAD_WAIT seconds: pman goes on storing them. GET the "
                        "same path (the Location header) until state is done or failed.",
                        "headers": {"Location": {"schema": {"type": "string"}}},
                        "content": {"application/json": {"schema": _ref("UploadStatus")}},
                    },
                    **_data_errors(*upload_errors),
                },
            },
            "get": {
                "summary": "The outcome of an upload answered 202 (stored in the background)",
                "responses": {
                    "200": {
                        "description": "The last such upload to the job's input_dir; state "
                        "uploading while pman stores it, then done or failed (with a message).",
                        "content": {"application/json": {"schema": _ref("UploadStatus")}},
                    },
                    **_data_errors("404"),
                },
            },
        },
        "/api/v1/_data/{jid}/output/": {
            "parameters": [jid],
            "get": {
                "summary": "Download a job's published output and its manifest",
                "parameters": [
                    {
                        "name": "format",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string", "enum": ["tar", "tgz", "zip"]},
                        "description": "Archive format; default from Accept, else tar.",
                    }
                ],
                "responses": {
                    "200": {
                        "description": "The output files and .publisher-manifest.json, streamed.",
                        "content": {
                            "application/x-tar": BINARY,
                            "application/gzip": BINARY,
                            "application/zip": BINARY,
                        },
                    },
                    **_data_errors("400", "404", "409"),
                },
            },
        },
    }


def _data_errors(*codes: str) -> dict[str, Any]:
    error = {"application/json": {"schema": _ref("Error")}}
    chosen = sorted({"401", "403", "405", "502", "503", *codes})
    return {code: {"description": DATA_ERRORS[code], "content": error} for code in chosen}
