"""Field checks with the API server's messages, shared by the validation of every kind.

Field problems are collected by a ``Checker`` as ``Cause`` objects and raised together as
one 422 Invalid, the way the API server reports them; a value of the wrong JSON type
raises a 400, as the real server's decoder does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from localcluster.apiserver import errors
from localcluster.apiserver.errors import Cause

Obj = dict[str, Any]

# Matched against whole names (re.fullmatch): "$" would also match before a final newline,
# which the API server never accepts in a name.
_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS_LABEL = re.compile(_LABEL)
DNS_SUBDOMAIN = re.compile(rf"{_LABEL}(\.{_LABEL})*")
_QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")

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


def quote(value: Any) -> str:
    """A value as Go's %q writes it in API messages."""
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
        message = f"Invalid value: {quote(value)}: {detail}"
        self.causes.append(Cause(path, "FieldValueInvalid", message))

    def duplicate(self, path: str, value: Any) -> None:
        self.causes.append(Cause(path, "FieldValueDuplicate", f"Duplicate value: {quote(value)}"))

    def not_found(self, path: str, value: Any) -> None:
        self.causes.append(Cause(path, "FieldValueNotFound", f"Not found: {quote(value)}"))

    def unsupported(self, path: str, value: Any, supported: tuple[str, ...]) -> None:
        listed = ", ".join(quote(s) for s in supported)
        message = f"Unsupported value: {quote(value)}: supported values: {listed}"
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
    elif not _DNS_LABEL.fullmatch(value):
        check.invalid(path, value, LABEL_MESSAGE)


def check_dns_subdomain(check: Checker, path: str, value: str) -> None:
    if len(value) > 253:
        check.invalid(path, value, "must be no more than 253 characters")
    elif not DNS_SUBDOMAIN.fullmatch(value):
        check.invalid(path, value, SUBDOMAIN_MESSAGE)


def check_qualified_key(check: Checker, path: str, key: str) -> None:
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not DNS_SUBDOMAIN.fullmatch(prefix)):
        check.invalid(path, key, "prefix part " + SUBDOMAIN_MESSAGE)
    if not name or len(name) > 63 or not _QUALIFIED_NAME.fullmatch(name):
        check.invalid(
            path,
            key,
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must start "
            "and end with an alphanumeric character, and be no more than 63 characters",
        )


def check_labels(check: Checker, path: str, labels: dict[str, str]) -> None:
    for key, value in labels.items():
        check_qualified_key(check, path, key)
        if len(value) > 63 or not _LABEL_VALUE.fullmatch(value):
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
        check_qualified_key(check, "metadata.annotations", key)
    return meta
