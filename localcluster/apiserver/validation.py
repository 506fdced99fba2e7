"""Validation and defaulting of the objects clients create, with the API server's messages.

Jobs (with their pod template, see ``podspec``), pod updates, Secrets, ConfigMaps,
ServiceAccounts, Namespaces and Events. Only what the local cluster serves is checked.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable
from typing import Any

from localcluster.apiserver import errors
from localcluster.apiserver.checks import (
    DNS_SUBDOMAIN,
    Checker,
    check_dns_label,
    check_dns_subdomain,
    check_labels,
    check_metadata,
)
from localcluster.apiserver.podspec import check_pod_spec, default_pod_spec

Obj = dict[str, Any]

_CONFIG_KEY = re.compile(r"[-._a-zA-Z0-9]+")


# -- jobs

JOB_MUTABLE_SPEC = ("parallelism", "activeDeadlineSeconds", "suspend", "ttlSecondsAfterFinished")
JOB_LABELS = (
    "batch.kubernetes.io/controller-uid",
    "batch.kubernetes.io/job-name",
    "controller-uid",
    "job-name",
)


def validate_job(job: Obj) -> None:
    check = Checker()
    meta = check_metadata(check, job, name_check=_check_job_name)
    spec = check.dict_at(job, "spec", "Job.spec")
    job["spec"] = spec
    for key in ("parallelism", "completions", "backoffLimit", "ttlSecondsAfterFinished"):
        check.nonnegative(spec, key, f"spec.{key}")
    deadline = check.int_at(spec, "activeDeadlineSeconds", "spec.activeDeadlineSeconds")
    if deadline is not None and deadline <= 0:
        check.invalid("spec.activeDeadlineSeconds", deadline, "must be greater than 0")
    if spec.get("selector") and not spec.get("manualSelector"):
        check.invalid(
            "spec.selector", json.dumps(spec["selector"]), "`selector` will be auto-generated"
        )
    mode = spec.get("completionMode", "NonIndexed")
    if mode != "NonIndexed":
        check.unsupported("spec.completionMode", mode, ("NonIndexed",))
    for unsupported in ("podFailurePolicy", "successPolicy", "backoffLimitPerIndex"):
        if spec.get(unsupported) is not None:
            check.forbidden(f"spec.{unsupported}", "not supported by the local cluster")
    template = check.dict_at(spec, "template", "Job.spec.template")
    spec["template"] = template
    template_meta = check.dict_at(template, "metadata", "Job.spec.template.metadata")
    check_labels(
        check,
        "spec.template.metadata.labels",
        check.string_map_at(template_meta, "labels", "Job.spec.template.metadata.labels"),
    )
    pod_spec = check.dict_at(template, "spec", "Job.spec.template.spec")
    template["spec"] = pod_spec
    check_pod_spec(check, pod_spec, "spec.template.spec", restart_policies=("OnFailure", "Never"))
    check.raise_if_any("Job", "batch", meta.get("name") or meta.get("generateName", ""))


def _check_job_name(check: Checker, path: str, name: str) -> None:
    check_dns_subdomain(check, path, name)
    if DNS_SUBDOMAIN.fullmatch(name) and len(name) > 63:
        # The name becomes the value of the job-name label, which is limited to 63 characters.
        check.invalid(path, name, "must be no more than 63 characters")


def default_job(job: Obj, uid: str) -> None:
    """Fill in what the API server sets on a new Job (selector, labels, counts)."""
    meta, spec = job["metadata"], job["spec"]
    if spec.get("parallelism") is None and spec.get("completions") is None:
        spec["completions"] = 1
    spec.setdefault("parallelism", 1)
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
    template_meta = spec["template"].setdefault("metadata", {})
    had_template_labels = "labels" in template_meta
    labels = template_meta.setdefault("labels", {})
    values = (uid, meta["name"], uid, meta["name"])
    labels.update(dict(zip(JOB_LABELS, values, strict=True)))
    spec["selector"] = {"matchLabels": {JOB_LABELS[0]: uid}}
    # The API server shares the template's label map with an unlabelled Job, so such a Job
    # shows the generated labels too.
    if had_template_labels and not meta.get("labels"):
        meta["labels"] = dict(labels)
    default_pod_spec(spec["template"]["spec"])


def validate_job_update(old: Obj, new: Obj) -> None:
    check = Checker()
    old_spec, new_spec = old.get("spec", {}), new.get("spec") or {}
    for key in set(old_spec) | set(new_spec):
        if key not in JOB_MUTABLE_SPEC and old_spec.get(key) != new_spec.get(key):
            check.invalid(f"spec.{key}", json.dumps(new_spec.get(key)), "field is immutable")
    check.raise_if_any("Job", "batch", old["metadata"]["name"])


# -- pods (updates only; pods are created by the job controller)


def validate_pod_update(old: Obj, new: Obj) -> None:
    old_spec, new_spec = dict(old.get("spec", {})), dict(new.get("spec") or {})
    before = old_spec.pop("activeDeadlineSeconds", None)
    check = Checker()
    after = check.int_at(new_spec, "activeDeadlineSeconds", "spec.activeDeadlineSeconds")
    new_spec.pop("activeDeadlineSeconds", None)
    path = "spec.activeDeadlineSeconds"
    if after is not None and after <= 0:
        check.invalid(path, after, "must be greater than 0")
    elif before is not None and after is None:
        check.invalid(path, None, "must not update from a positive integer to nil value")
    elif before is not None and after is not None and after > before:
        check.invalid(path, after, "must be less than or equal to previous value")
    if old_spec != new_spec:
        check.forbidden(
            "spec",
            "pod updates may not change fields other than `spec.activeDeadlineSeconds` "
            "on the local cluster",
        )
    check.raise_if_any("Pod", "", old["metadata"]["name"])


# -- secrets, config maps, service accounts, namespaces, events


def _check_keys(check: Checker, keys: list[str], path: str) -> None:
    for key in keys:
        if not _CONFIG_KEY.fullmatch(key) or len(key) > 253:
            check.invalid(
                f"{path}[{key}]",
                key,
                "a valid config key must consist of alphanumeric characters, '-', '_' or '.' "
                "(e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is "
                "'[-._a-zA-Z0-9]+')",
            )


def _decode_base64(value: str, path: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise errors.bad_request(f"illegal base64 data in {path}: {exc}") from exc


def validate_secret(secret: Obj) -> None:
    check = Checker()
    meta = check_metadata(check, secret, name_check=check_dns_subdomain)
    data = check.string_map_at(secret, "data", "Secret.data")
    string_data = check.string_map_at(secret, "stringData", "Secret.stringData")
    _check_keys(check, [*data, *string_data], "data")
    for key, value in data.items():
        _decode_base64(value, f"Secret.data[{key}]")
    check.raise_if_any("Secret", "", meta.get("name") or meta.get("generateName", ""))


def default_secret(secret: Obj) -> None:
    """Merge ``stringData`` into ``data``, as the API server does on write."""
    data = secret.get("data") or {}
    for key, value in (secret.pop("stringData", None) or {}).items():
        data[key] = base64.b64encode(value.encode()).decode()
    if data:
        secret["data"] = data
    secret.setdefault("type", "Opaque")


def validate_secret_update(old: Obj, new: Obj) -> None:
    if old.get("immutable") and (old.get("data") != new.get("data")):
        check = Checker()
        check.forbidden("data", "field is immutable when `immutable` is set")
        check.raise_if_any("Secret", "", old["metadata"]["name"])


def validate_configmap(config_map: Obj) -> None:
    check = Checker()
    meta = check_metadata(check, config_map, name_check=check_dns_subdomain)
    data = check.string_map_at(config_map, "data", "ConfigMap.data")
    binary = check.string_map_at(config_map, "binaryData", "ConfigMap.binaryData")
    _check_keys(check, [*data, *binary], "data")
    for key in set(data) & set(binary):
        check.duplicate(f"binaryData[{key}]", key)
    for key, value in binary.items():
        _decode_base64(value, f"ConfigMap.binaryData[{key}]")
    check.raise_if_any("ConfigMap", "", meta.get("name") or meta.get("generateName", ""))


def validate_named(
    kind: str, name_check: Callable[[Checker, str, str], None]
) -> Callable[[Obj], None]:
    def validate(obj: Obj) -> None:
        check = Checker()
        meta = check_metadata(check, obj, name_check=name_check)
        check.raise_if_any(kind, "", meta.get("name") or meta.get("generateName", ""))

    return validate


validate_serviceaccount = validate_named("ServiceAccount", check_dns_subdomain)
validate_namespace = validate_named("Namespace", check_dns_label)
validate_event = validate_named("Event", check_dns_subdomain)
