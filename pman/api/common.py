"""What every request to pman goes through: the bearer token, the request metrics, and the
answer to any error (``{"message": ...}`` with the error's status)."""

from __future__ import annotations

import hmac
import json
import logging
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from pman.errors import BadRequest, JobNotFound, PmanError, Unauthorized, UnsupportedMediaType
from pman.models import is_jid

if TYPE_CHECKING:
    from pman.app import Pman
    from pman.settings import Settings

log = logging.getLogger("pman.api")
blueprint = Blueprint("common", __name__)
# Probes need no token: a kubelet has none. Nor do job pods, which write large objects with
# their temporary URLs as authority (pman.api.largeobjects).
PUBLIC_ENDPOINTS = {"ops.healthz", "ops.readyz", "largeobjects.write_large_object"}


def pman() -> Pman:
    """The app's settings, job service and boundaries (see :func:`pman.app.create_app`)."""
    return current_app.extensions["pman"]


def json_body() -> Any:
    """The request's JSON body; 415 when it is not declared JSON, 400 when it is not JSON."""
    if not request.is_json:
        raise UnsupportedMediaType("the request body must be JSON (Content-Type: application/json)")
    data = request.get_data(cache=False)
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    if request.content_length is None and len(data) >= limit:
        # A chunked body is cut at the limit rather than refused: refuse it here.
        raise RequestEntityTooLarge()
    try:
        return json.loads(data)
    except json.JSONDecodeError as error:
        raise BadRequest(f"the request body is not valid JSON: {error}") from None
    except UnicodeDecodeError:
        raise BadRequest("the request body is not valid JSON: it is not UTF-8 text") from None
    except RecursionError:
        raise BadRequest("the request body nests arrays or objects too deeply") from None
    except ValueError:
        # The one other refusal of the decoder: an integer of thousands of digits.
        raise BadRequest("the request body holds a number too long to read") from None


def known_jid(jid: str) -> str:
    """``jid``, or 404 when it could never have been accepted (Kubernetes need not be asked)."""
    if not is_jid(jid):
        raise JobNotFound(f"no job {jid!r}")
    return jid


@blueprint.before_app_request
def _authenticate() -> None:
    settings = pman().settings
    token = settings.api_token
    if not token or request.endpoint in PUBLIC_ENDPOINTS or _is_pfcon(settings):
        return
    given = request.headers.get("Authorization", "")
    scheme, _, credentials = given.partition(" ")
    expected = token.encode()
    if scheme.lower() != "bearer" or not hmac.compare_digest(credentials.encode(), expected):
        raise Unauthorized("this pman needs an 'Authorization: Bearer <token>' header")


def _is_pfcon(settings: Settings) -> bool:
    """Whether the request is for the pfcon API, which has its own tokens (pfcon's JWT)."""
    base = settings.pfcon_base
    return settings.pfcon_enabled and (
        request.path.startswith(base) or request.path == base.rstrip("/")
    )


@blueprint.after_app_request
def _count(response: Response) -> Response:
    route = request.url_rule.rule if request.url_rule else "unmatched"
    pman().metrics.count_request(route, request.method, response.status_code)
    return response


@blueprint.app_errorhandler(PmanError)
def _pman_error(error: PmanError) -> Any:
    response = jsonify({"message": error.message})
    response.status_code = error.status
    if isinstance(error, Unauthorized):
        response.headers["WWW-Authenticate"] = "Bearer"
    return response


@blueprint.app_errorhandler(HTTPException)
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


@blueprint.app_errorhandler(Exception)
def _unexpected(error: Exception) -> Any:
    log.exception("unexpected error answering %s %s", request.method, request.path)
    return jsonify({"message": f"internal error: {type(error).__name__}"}), 500
