"""``POST /api/v1/_large-objects/``: the manifest of a Static Large Object, written for a
publisher that holds only temporary URLs (``SWIFT_POD_CREDENTIALS=tempurl``), which cannot
write one (:mod:`pman.tempurls`).

No bearer token: job pods hold none. The request carries its own authority instead: the PUT
temporary URLs of the object and of its segments, which pman checks against the account's
temp URL keys before it writes the manifest with its own credentials. It is served whenever
pman has Swift credentials (a collaborator given a drop box's URLs may use it too), and
answers 503 otherwise.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify

from pman.api.common import json_body, pman
from pman.errors import StoreUnavailable
from pman.tempurls import check_large_object

blueprint = Blueprint("largeobjects", __name__)


@blueprint.post("/api/v1/_large-objects/")
def write_large_object() -> Any:
    store = pman().store
    if store is None:
        raise StoreUnavailable("this pman has no Swift credentials: it writes no large object")
    body = json_body()
    with store.session() as swift:
        keys = swift.temp_url_keys()
        wanted = check_large_object(body, storage_url=swift.storage_url(), keys=keys)
        swift.put_large_object(wanted.container, wanted.name, wanted.manifest, etag=wanted.etag)
    return jsonify({"container": wanted.container, "object": wanted.name}), 201
