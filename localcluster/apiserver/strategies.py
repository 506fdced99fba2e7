"""Type-specific rules of the API: checks and defaults on create, what an update may change.

An update keeps the server-owned metadata, takes only ``status`` through the status
subresource and never through the main resource (for kinds that have one), bumps
``generation`` when the spec changes, and applies the kind's own update checks.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from localcluster.apiserver import checks, errors, validation
from localcluster.apiserver.routing import RequestInfo

Obj = dict[str, Any]
SERVER_METADATA = (
    "name",
    "namespace",
    "uid",
    "creationTimestamp",
    "generation",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generateName",
)


@dataclass(frozen=True)
class Strategy:
    """Type-specific hooks: checks and defaults on create, checks on update."""

    validate: Callable[[Obj], None]
    prepare: Callable[[Obj], None] | None = None
    validate_update: Callable[[Obj, Obj], None] | None = None
    # Objects whose status only the status subresource may change.
    has_status: bool = False


def _prepare_job(job: Obj) -> None:
    job.pop("status", None)
    validation.default_job(job, job["metadata"]["uid"])
    job["status"] = {}


STRATEGIES = {
    "jobs": Strategy(
        validation.validate_job, _prepare_job, validation.validate_job_update, has_status=True
    ),
    "pods": Strategy(lambda obj: None, None, validation.validate_pod_update, has_status=True),
    "secrets": Strategy(
        validation.validate_secret, validation.default_secret, validation.validate_secret_update
    ),
    "configmaps": Strategy(validation.validate_configmap),
    "serviceaccounts": Strategy(validation.validate_serviceaccount),
    "events": Strategy(validation.validate_event),
    "namespaces": Strategy(validation.validate_namespace),
}


def merge_update(info: RequestInfo, strategy: Strategy, old: Obj, new: Obj) -> Obj:
    """The stored form of an update: server-owned fields kept, checks applied."""
    if info.subresource == "status":
        result = json.loads(json.dumps(old))
        result["status"] = new.get("status") or {}
        return result
    check = checks.Checker()
    meta = check.dict_at(new, "metadata", "ObjectMeta.metadata")
    checks.check_labels(
        check, "metadata.labels", check.string_map_at(meta, "labels", "metadata.labels")
    )
    check.raise_if_any(old["kind"], info.group, info.name)
    for key in SERVER_METADATA:
        if key in old["metadata"]:
            meta[key] = old["metadata"][key]
        else:
            meta.pop(key, None)
    new["metadata"], new["kind"], new["apiVersion"] = meta, old["kind"], old["apiVersion"]
    if strategy.has_status:
        new["status"] = old.get("status", {})
    if strategy.validate_update is not None:
        strategy.validate_update(old, new)
    if "generation" in meta and new.get("spec") != old.get("spec"):
        meta["generation"] = old["metadata"]["generation"] + 1
    return new


def delete_options(info: RequestInfo, options: Any) -> dict[str, Any]:
    """Keyword arguments for ``Lifecycle.delete`` from query parameters and DeleteOptions."""
    options = options or {}
    if not isinstance(options, dict):
        raise errors.bad_request("DeleteOptions must be a JSON object")
    propagation = info.query.get("propagationPolicy") or options.get("propagationPolicy")
    if propagation is None and "orphanDependents" in options:
        propagation = "Orphan" if options["orphanDependents"] else "Background"
    grace = info.query.get("gracePeriodSeconds", options.get("gracePeriodSeconds"))
    try:
        grace = None if grace in (None, "") else int(grace)
    except (TypeError, ValueError):
        raise errors.bad_request("gracePeriodSeconds must be an integer") from None
    preconditions = options.get("preconditions") or {}
    return {
        "propagation": propagation,
        "grace": grace,
        "uid": preconditions.get("uid"),
        "resource_version": preconditions.get("resourceVersion"),
    }
