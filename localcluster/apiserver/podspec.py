"""Checks and defaults of pod specs (the template of a Job), with the API server's messages."""

from __future__ import annotations

import re
from typing import Any

from localcluster.apiserver.checks import (
    Checker,
    check_dns_label,
    check_dns_subdomain,
    quote,
    type_error,
)
from localcluster.apiserver.meta import parse_quantity

Obj = dict[str, Any]

_ENV_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")
_LABEL_FIELD_PATH = re.compile(r"metadata\.(labels|annotations)\['[^']+'\]")
ENV_MESSAGE = (
    "a valid environment variable name must consist of alphabetic characters, digits, '_', "
    "'-', or '.', and must not start with a digit (e.g. 'my.env-name',  or 'MY_ENV.NAME',  or "
    "'MyEnvName1', regex used for validation is '[-._a-zA-Z][-._a-zA-Z0-9]*')"
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


def _check_env(check: Checker, container: Obj, path: str) -> None:
    for i, var in enumerate(check.list_at(container, "env", f"{path}.env")):
        here = f"{path}.env[{i}]"
        if not isinstance(var, dict):
            raise type_error(here, var, "v1.EnvVar")
        name = check.str_at(var, "name", f"{here}.name")
        if not name:
            check.required(f"{here}.name")
        elif not _ENV_NAME.fullmatch(name):
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
            elif field_path not in FIELD_PATHS and not _LABEL_FIELD_PATH.fullmatch(field_path):
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
        claim = volume.get("persistentVolumeClaim")
        if isinstance(claim, dict):
            where = f"{here}.persistentVolumeClaim.claimName"
            if not check.str_at(claim, "claimName", where):
                check.required(where)
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
        listed = ", ".join(quote(p) for p in restart_policies)
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


GRACE_SECONDS = 30
"""The default terminationGracePeriodSeconds."""


def default_pod_spec(spec: Obj) -> None:
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    spec.setdefault("terminationGracePeriodSeconds", GRACE_SECONDS)
    spec.setdefault("enableServiceLinks", True)
    for container in [*spec.get("initContainers", []), *spec.get("containers", [])]:
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        container.setdefault("imagePullPolicy", _image_pull_policy(container.get("image", "")))
        container.setdefault("resources", {})
    for volume in spec.get("volumes", []):
        _default_volume(volume)
