"""Validation and defaulting of the objects clients create, with the API server's messages.

Field problems are collected as ``Cause`` objects and raised together as one 422 Invalid,
the way the API server reports them; a value of the wrong JSON type raises a 400, as the
real server's decoder does. Only what the local cluster serves is checked.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable
from typing import Any

from localcluster import errors
from localcluster.errors import Cause
from localcluster.meta import parse_quantity

Obj = dict[str, Any]

_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS_LABEL = re.compile(rf"^{_LABEL}$")
_DNS_SUBDOMAIN = re.compile(rf"^{_LABEL}(\.{_LABEL})*$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")

SUBDOMAIN_MESSAGE = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' "
    "or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex "
    "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
LABEL_MESSAGE = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
    "must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex "
    "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
ENV_MESSAGE = (
    "a valid environment variable name must consist of alphabetic characters, digits, '_', "
    "'-', or '.', and must not start with a digit (e.g. 'my.env-name',  or 'MY_ENV.NAME',  or "
    "'MyEnvName1', regex used for validation is '[-._a-zA-Z][-._a-zA-Z0-9]*')"
)

VOLUME_SOURCES = (
    "emptyDir",
    "secret",
    "configMap",
    "projected",
    "downwardAPI",
    "hostPath",
    "persistentVolumeClaim",
    "ephemeral",
    "nfs",
    "csi",
)
FIELD_PATHS = (
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
)


def _quote(value: Any) -> str:
    return json.dumps(value) if isinstance(value, str) else str(value)


def type_error(path: str, value: Any, expected: str) -> errors.ApiError:
    kinds = {str: "string", bool: "bool", int: "number", float: "number", list: "array"}
    found = kinds.get(type(value), "object" if isinstance(value, dict) else "null")
    return errors.bad_request(
        f"json: cannot unmarshal {found} into Go struct field {path} of type {expected}"
    )


class Checker:
    """Collects the field problems of one object."""

    def __init__(self) -> None:
        self.causes: list[Cause] = []

    def required(self, path: str, detail: str = "") -> None:
        message = "Required value" + (f": {detail}" if detail else "")
        self.causes.append(Cause(path, "FieldValueRequired", message))

    def invalid(self, path: str, value: Any, detail: str) -> None:
        message = f"Invalid value: {_quote(value)}: {detail}"
        self.causes.append(Cause(path, "FieldValueInvalid", message))

    def duplicate(self, path: str, value: Any) -> None:
        self.causes.append(Cause(path, "FieldValueDuplicate", f"Duplicate value: {_quote(value)}"))

    def not_found(self, path: str, value: Any) -> None:
        self.causes.append(Cause(path, "FieldValueNotFound", f"Not found: {_quote(value)}"))

    def unsupported(self, path: str, value: Any, supported: tuple[str, ...]) -> None:
        listed = ", ".join(_quote(s) for s in supported)
        message = f"Unsupported value: {_quote(value)}: supported values: {listed}"
        self.causes.append(Cause(path, "FieldValueNotSupported", message))

    def forbidden(self, path: str, detail: str) -> None:
        self.causes.append(Cause(path, "FieldValueForbidden", f"Forbidden: {detail}"))

    def raise_if_any(self, kind: str, group: str, name: str) -> None:
        if self.causes:
            raise errors.invalid(kind, group, name, self.causes)

    # -- typed access: wrong JSON types are decoding errors (400), as in the real server

    def dict_at(self, parent: Obj, key: str, path: str) -> Obj:
        value = parent.get(key)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise type_error(path, value, "object")
        return value

    def list_at(self, parent: Obj, key: str, path: str) -> list:
        value = parent.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise type_error(path, value, "array")
        return value

    def str_at(self, parent: Obj, key: str, path: str) -> str:
        value = parent.get(key)
        if value is None:
            return ""
        if not isinstance(value, str):
            raise type_error(path, value, "string")
        return value

    def int_at(self, parent: Obj, key: str, path: str) -> int | None:
        value = parent.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise type_error(path, value, "int32")
        return value

    def strings_at(self, parent: Obj, key: str, path: str) -> list[str]:
        values = self.list_at(parent, key, path)
        for value in values:
            if not isinstance(value, str):
                raise type_error(path, value, "string")
        return values

    def string_map_at(self, parent: Obj, key: str, path: str) -> dict[str, str]:
        mapping = self.dict_at(parent, key, path)
        for value in mapping.values():
            if not isinstance(value, str):
                raise type_error(path, value, "string")
        return mapping

    def nonnegative(self, parent: Obj, key: str, path: str) -> int | None:
        value = self.int_at(parent, key, path)
        if value is not None and value < 0:
            self.invalid(path, value, "must be greater than or equal to 0")
        return value


# -- names, labels, metadata


def check_dns_label(check: Checker, path: str, value: str) -> None:
    if len(value) > 63:
        check.invalid(path, value, "must be no more than 63 characters")
    elif not _DNS_LABEL.match(value):
        check.invalid(path, value, LABEL_MESSAGE)


def check_dns_subdomain(check: Checker, path: str, value: str) -> None:
    if len(value) > 253:
        check.invalid(path, value, "must be no more than 253 characters")
    elif not _DNS_SUBDOMAIN.match(value):
        check.invalid(path, value, SUBDOMAIN_MESSAGE)


def _check_qualified_key(check: Checker, path: str, key: str) -> None:
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        check.invalid(path, key, "prefix part " + SUBDOMAIN_MESSAGE)
    if not name or len(name) > 63 or not _QUALIFIED_NAME.match(name):
        check.invalid(
            path,
            key,
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must start "
            "and end with an alphanumeric character, and be no more than 63 characters",
        )


def check_labels(check: Checker, path: str, labels: dict[str, str]) -> None:
    for key, value in labels.items():
        _check_qualified_key(check, path, key)
        if len(value) > 63 or not _LABEL_VALUE.match(value):
            check.invalid(
                path,
                value,
                "a valid label must be an empty string or consist of alphanumeric characters, "
                "'-', '_' or '.', and must start and end with an alphanumeric character, and be "
                "no more than 63 characters",
            )


def check_metadata(
    check: Checker, obj: Obj, *, name_check: Callable[[Checker, str, str], None]
) -> Obj:
    """Checks the metadata of a new object; returns it (created when missing)."""
    meta = check.dict_at(obj, "metadata", "ObjectMeta.metadata")
    obj["metadata"] = meta
    name = check.str_at(meta, "name", "ObjectMeta.metadata.name")
    generate = check.str_at(meta, "generateName", "ObjectMeta.metadata.generateName")
    if not name and not generate:
        check.required("metadata.name", "name or generateName is required")
    elif name:
        name_check(check, "metadata.name", name)
    labels = check.string_map_at(meta, "labels", "ObjectMeta.metadata.labels")
    check_labels(check, "metadata.labels", labels)
    annotations = check.string_map_at(meta, "annotations", "ObjectMeta.metadata.annotations")
    for key in annotations:
        _check_qualified_key(check, "metadata.annotations", key)
    return meta


# -- pod specs


def _check_env(check: Checker, container: Obj, path: str) -> None:
    for i, var in enumerate(check.list_at(container, "env", f"{path}.env")):
        here = f"{path}.env[{i}]"
        if not isinstance(var, dict):
            raise type_error(here, var, "v1.EnvVar")
        name = check.str_at(var, "name", f"{here}.name")
        if not name:
            check.required(f"{here}.name")
        elif not _ENV_NAME.match(name):
            check.invalid(f"{here}.name", name, ENV_MESSAGE)
        check.str_at(var, "value", f"{here}.value")
        source = check.dict_at(var, "valueFrom", f"{here}.valueFrom")
        if not source:
            continue
        kinds = ("fieldRef", "secretKeyRef", "configMapKeyRef", "resourceFieldRef")
        given = [k for k in kinds if source.get(k)]
        if len(given) != 1:
            check.invalid(
                f"{here}.valueFrom", "", "may not have more than one field specified at a time"
            )
            continue
        if var.get("value"):
            check.invalid(f"{here}.valueFrom", "", "may not be specified when `value` is not empty")
        if given[0] == "fieldRef":
            ref = check.dict_at(source, "fieldRef", f"{here}.valueFrom.fieldRef")
            field_path = check.str_at(ref, "fieldPath", f"{here}.valueFrom.fieldRef.fieldPath")
            ref.setdefault("apiVersion", "v1")
            if not field_path:
                check.required(f"{here}.valueFrom.fieldRef.fieldPath")
            elif field_path not in FIELD_PATHS and not re.match(
                r"^metadata\.(labels|annotations)\['[^']+'\]$", field_path
            ):
                check.unsupported(
                    f"{here}.valueFrom.fieldRef.fieldPath",
                    field_path,
                    ("metadata.name", "metadata.namespace", "metadata.uid", *FIELD_PATHS[3:]),
                )


def _check_resources(check: Checker, container: Obj, path: str) -> None:
    resources = check.dict_at(container, "resources", f"{path}.resources")
    values: dict[str, dict[str, Any]] = {}
    for part in ("limits", "requests"):
        quantities = check.dict_at(resources, part, f"{path}.resources.{part}")
        values[part] = {}
        for key, raw in quantities.items():
            try:
                values[part][key] = parse_quantity(raw)
            except ValueError:
                check.invalid(
                    f"{path}.resources.{part}[{key}]",
                    raw,
                    "quantities must match the regular expression "
                    "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
                )
                continue
            if values[part][key] < 0:
                check.invalid(
                    f"{path}.resources.{part}[{key}]", raw, "must be greater than or equal to 0"
                )
    for key, request in values["requests"].items():
        limit = values["limits"].get(key)
        if limit is not None and request > limit:
            check.invalid(
                f"{path}.resources.requests",
                str(resources["requests"][key]),
                f"must be less than or equal to {key} limit of {resources['limits'][key]}",
            )


def _check_container(
    check: Checker, container: Any, path: str, volumes: set[str], names: set[str]
) -> None:
    if not isinstance(container, dict):
        raise type_error(path, container, "v1.Container")
    name = check.str_at(container, "name", f"{path}.name")
    if not name:
        check.required(f"{path}.name")
    else:
        check_dns_label(check, f"{path}.name", name)
        if name in names:
            check.duplicate(f"{path}.name", name)
        names.add(name)
    if not check.str_at(container, "image", f"{path}.image").strip():
        check.required(f"{path}.image")
    check.strings_at(container, "command", f"{path}.command")
    check.strings_at(container, "args", f"{path}.args")
    check.str_at(container, "workingDir", f"{path}.workingDir")
    _check_env(check, container, path)
    _check_resources(check, container, path)
    paths: set[str] = set()
    for i, mount in enumerate(check.list_at(container, "volumeMounts", f"{path}.volumeMounts")):
        here = f"{path}.volumeMounts[{i}]"
        if not isinstance(mount, dict):
            raise type_error(here, mount, "v1.VolumeMount")
        volume = check.str_at(mount, "name", f"{here}.name")
        mount_path = check.str_at(mount, "mountPath", f"{here}.mountPath")
        if not volume:
            check.required(f"{here}.name")
        elif volume not in volumes:
            check.not_found(f"{here}.name", volume)
        if not mount_path:
            check.required(f"{here}.mountPath")
        elif mount_path in paths:
            check.invalid(f"{here}.mountPath", mount_path, "must be unique")
        paths.add(mount_path)
        sub_path = check.str_at(mount, "subPath", f"{here}.subPath")
        if sub_path.startswith("/") or ".." in sub_path.split("/"):
            check.invalid(f"{here}.subPath", sub_path, "must be a relative path without '..'")


def _check_volumes(check: Checker, spec: Obj, path: str) -> set[str]:
    names: set[str] = set()
    for i, volume in enumerate(check.list_at(spec, "volumes", f"{path}.volumes")):
        here = f"{path}.volumes[{i}]"
        if not isinstance(volume, dict):
            raise type_error(here, volume, "v1.Volume")
        name = check.str_at(volume, "name", f"{here}.name")
        if not name:
            check.required(f"{here}.name")
        else:
            check_dns_label(check, f"{here}.name", name)
            if name in names:
                check.duplicate(f"{here}.name", name)
            names.add(name)
        sources = [k for k in volume if k != "name"]
        if not sources:
            check.required(here, "must specify a volume type")
        elif len(sources) > 1:
            check.forbidden(f"{here}.{sources[1]}", "may not specify more than 1 volume type")
        for source in sources:
            check.dict_at(volume, source, f"{here}.{source}")
    return names


def check_pod_spec(
    check: Checker, spec: Obj, path: str, *, restart_policies: tuple[str, ...]
) -> None:
    volumes = _check_volumes(check, spec, path)
    names: set[str] = set()
    for i, container in enumerate(check.list_at(spec, "initContainers", f"{path}.initContainers")):
        _check_container(check, container, f"{path}.initContainers[{i}]", volumes, names)
    containers = check.list_at(spec, "containers", f"{path}.containers")
    if not containers:
        check.required(f"{path}.containers")
    for i, container in enumerate(containers):
        _check_container(check, container, f"{path}.containers[{i}]", volumes, names)
    policy = check.str_at(spec, "restartPolicy", f"{path}.restartPolicy")
    if not policy:
        listed = ", ".join(_quote(p) for p in restart_policies)
        check.required(f"{path}.restartPolicy", f"valid values: {listed}")
    elif policy not in restart_policies:
        check.unsupported(f"{path}.restartPolicy", policy, restart_policies)
    account = check.str_at(spec, "serviceAccountName", f"{path}.serviceAccountName")
    if account:
        check_dns_subdomain(check, f"{path}.serviceAccountName", account)
    check.nonnegative(
        spec, "terminationGracePeriodSeconds", f"{path}.terminationGracePeriodSeconds"
    )
    check.string_map_at(spec, "nodeSelector", f"{path}.nodeSelector")


def _image_pull_policy(image: str) -> str:
    last = image.rsplit("/", 1)[-1]
    if "@" in last:
        return "IfNotPresent"
    tag = last.rpartition(":")[2] if ":" in last else ""
    return "Always" if tag in ("", "latest") else "IfNotPresent"


def _default_volume(volume: Obj) -> None:
    for source in ("secret", "configMap", "projected", "downwardAPI"):
        if isinstance(volume.get(source), dict):
            volume[source].setdefault("defaultMode", 0o644)
    if "emptyDir" in volume and volume["emptyDir"] is None:
        volume["emptyDir"] = {}


def default_pod_spec(spec: Obj) -> None:
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("enableServiceLinks", True)
    for container in [*spec.get("initContainers", []), *spec.get("containers", [])]:
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        container.setdefault("imagePullPolicy", _image_pull_policy(container.get("image", "")))
        container.setdefault("resources", {})
    for volume in spec.get("volumes", []):
        _default_volume(volume)


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
    if _DNS_SUBDOMAIN.match(name) and len(name) > 63:
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
    old_spec.pop("activeDeadlineSeconds", None)
    new_spec.pop("activeDeadlineSeconds", None)
    if old_spec != new_spec:
        check = Checker()
        check.forbidden(
            "spec",
            "pod updates may not change fields other than `spec.activeDeadlineSeconds` "
            "on the local cluster",
        )
        check.raise_if_any("Pod", "", old["metadata"]["name"])


# -- secrets, config maps, service accounts, namespaces, events


def _check_keys(check: Checker, keys: list[str], path: str) -> None:
    for key in keys:
        if not _CONFIG_KEY.match(key) or len(key) > 253:
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
