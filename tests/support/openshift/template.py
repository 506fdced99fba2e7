"""Process OpenShift templates the way ``oc process`` does, without a cluster.

No installable tool processes templates locally (``oc`` is not installable here and the
Python clients ask a server), so this module follows OpenShift's own rules, those of
``oc process`` and of the template processor it calls:

- a value given by the caller replaces the parameter's ``value`` and turns its
  generator off; a caller parameter the template does not declare is an error, unless
  unknown parameters are explicitly ignored;
- a parameter still empty with ``generate: expression`` gets a value generated from its
  ``from`` pattern (``[a-z0-9]{8}``, ``\\w``, ``\\d``, ``\\a``, ``\\A``, 1 to 255 characters);
- a ``required`` parameter that is still empty is an error;
- ``${P}`` is replaced inside any string, map keys included; a string that is exactly
  ``${{P}}`` becomes the JSON-decoded value (the string itself when it is not JSON);
  a reference to an undeclared parameter stays as written;
- a hard-coded ``metadata.namespace`` is removed; one that references a parameter stays;
- the template's ``labels`` (substituted first) are merged into every object's labels.

The result is a ``v1`` ``List``, as ``oc process`` prints.
"""

from __future__ import annotations

import copy
import json
import random
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

Obj = dict[str, Any]

_STRING_REFERENCE = re.compile(r"\$\{([a-zA-Z0-9_]+?)\}")
_WHOLE_REFERENCE = re.compile(r"\$\{\{([a-zA-Z0-9_]+)\}\}")
_PARAMETER_NAME = re.compile(r"[a-zA-Z0-9_]+")

# The expression generator's own patterns (OpenShift's ExpressionValueGenerator).
_GENERATOR = re.compile(r"\[([a-zA-Z0-9\-\\]+)\](\{([0-9]+)\})")
_EXPRESSION = re.compile(r"\[(\\w|\\d|\\a|\\A)|([a-zA-Z0-9]\-[a-zA-Z0-9])+\]")
_RANGE = re.compile(r"([\\]?[a-zA-Z0-9]\-?[a-zA-Z0-9]?)")
ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
NUMERALS = "0123456789"
SYMBOLS = "~!@#$%^&*()-_+={}[]\\|<,>.?/\"';:`"
ASCII = ALPHABET + NUMERALS + SYMBOLS
_CLASSES = {
    "\\w": ALPHABET + NUMERALS + "_",
    "\\d": NUMERALS,
    "\\a": ALPHABET + NUMERALS,
    "\\A": SYMBOLS,
}


class TemplateError(Exception):
    """The template cannot be processed with these parameters; lists every problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def load(path: str | Path) -> Obj:
    """A template from a YAML or JSON file."""
    with open(path, encoding="utf-8") as handle:
        template = yaml.safe_load(handle)
    if not isinstance(template, dict) or template.get("kind") != "Template":
        raise TemplateError([f"{path} is not a Template"])
    return template


def process(
    template: Obj,
    values: Mapping[str, str] | None = None,
    *,
    ignore_unknown: bool = False,
    rng: random.Random | None = None,
) -> Obj:
    """The processed objects as a ``List``; ``values`` are ``oc process -p NAME=VALUE``."""
    found = resolve(template, values, ignore_unknown=ignore_unknown, rng=rng)
    labels = {
        evaluate(key, found)[0]: evaluate(str(value), found)[0]
        for key, value in (template.get("labels") or {}).items()
    }
    items = [_process_object(obj, found, labels) for obj in template.get("objects") or []]
    return {"kind": "List", "apiVersion": "v1", "metadata": {}, "items": items}


def resolve(
    template: Obj,
    values: Mapping[str, str] | None = None,
    *,
    ignore_unknown: bool = False,
    rng: random.Random | None = None,
) -> dict[str, str]:
    """Every parameter's final value: the caller's, else its default, else generated."""
    parameters = copy.deepcopy(template.get("parameters") or [])
    _check_parameters(parameters)
    _inject(parameters, values or {}, ignore_unknown=ignore_unknown)
    _generate(parameters, rng or random.SystemRandom())
    return {p["name"]: p.get("value") or "" for p in parameters}


def message(template: Obj, resolved: Mapping[str, str]) -> str:
    """The template's message with the resolved parameters substituted (as ``oc new-app``)."""
    return evaluate(template.get("message") or "", resolved)[0]


def _check_parameters(parameters: list[Obj]) -> None:
    problems, seen = [], set()
    for index, parameter in enumerate(parameters):
        name = parameter.get("name") or ""
        if not isinstance(name, str) or not _PARAMETER_NAME.fullmatch(name):
            problems.append(f"parameters[{index}]: invalid parameter name {name!r}")
        elif name in seen:
            problems.append(f"parameters[{index}]: duplicate parameter name {name!r}")
        seen.add(name)
        for field in ("value", "from", "generate"):
            # Go decodes these into strings: an unquoted YAML number or boolean is an error.
            if parameter.get(field) is not None and not isinstance(parameter[field], str):
                problems.append(f"parameters[{index}].{field} of {name} is not a string")
    if problems:
        raise TemplateError(problems)


def _inject(parameters: list[Obj], values: Mapping[str, str], *, ignore_unknown: bool) -> None:
    by_name = {p["name"]: p for p in parameters}
    problems = []
    for name, value in values.items():
        if name in by_name:
            # As oc does: the caller's value wins, even an empty one, and is never generated.
            by_name[name]["value"] = value
            by_name[name]["generate"] = ""
        elif not ignore_unknown:
            problems.append(f"unknown parameter name {name!r}")
    if problems:
        raise TemplateError(problems)


def _generate(parameters: list[Obj], rng: random.Random) -> None:
    problems = []
    for index, parameter in enumerate(parameters):
        if parameter.get("value"):
            continue
        generator = parameter.get("generate") or ""
        if generator == "expression":
            try:
                parameter["value"] = generate(str(parameter.get("from") or ""), rng)
            except ValueError as error:
                problems.append(f"parameters[{index}] {parameter['name']}: {error}")
                continue
        elif generator:
            problems.append(f"unknown generator name {generator!r} for {parameter['name']}")
            continue
        if not parameter.get("value") and parameter.get("required"):
            problems.append(f"parameter {parameter['name']} is required and must be specified")
    if problems:
        raise TemplateError(problems)


def generate(expression: str, rng: random.Random) -> str:
    """A value for ``generate: expression`` with ``from: expression``."""
    while match := _GENERATOR.search(expression):
        construct = match.group(0)
        ranges, length = _ranges_and_length(construct)
        alphabet = _alphabet(ranges)
        value = "".join(rng.choice(alphabet) for _ in range(length))
        expression = expression.replace(construct, value, 1)
    return expression


def _ranges_and_length(construct: str) -> tuple[str, int]:
    brace = construct.rindex("{")
    ranges = construct[:brace]
    if not _EXPRESSION.search(ranges):
        raise ValueError(f"malformed expression syntax: {ranges}")
    length = int(construct[brace + 1 : -1])
    if not 0 < length <= 255:
        raise ValueError(f"range must be within [1-255] characters ({length})")
    return ranges, length


def _alphabet(ranges: str) -> str:
    alphabet = ""
    for match in _RANGE.finditer(ranges):
        first, last = match.group(0)[0], match.group(0)[-1]
        if first + last in _CLASSES:
            alphabet += _CLASSES[first + last]
            continue
        left, right = ASCII.index(first), ASCII.rindex(last)
        if left > right:
            raise ValueError(f"invalid range specified: {first}-{last}")
        # OpenShift slices up to, not including, the range's last character ([a-z] never
        # yields "z"); matched here so that generated values look the same.
        alphabet += ASCII[left:right]
    alphabet = "".join(dict.fromkeys(alphabet))
    if not alphabet:
        raise ValueError(f"empty character range in {ranges}")
    return alphabet


def _process_object(obj: Any, values: Mapping[str, str], labels: Mapping[str, str]) -> Any:
    obj = copy.deepcopy(obj)
    _strip_namespace(obj)
    obj = _substitute(obj, values)
    if labels and isinstance(obj, dict):
        metadata = obj.setdefault("metadata", {})
        metadata["labels"] = {**(metadata.get("labels") or {}), **labels}
    return obj


def _strip_namespace(obj: Any) -> None:
    metadata = obj.get("metadata") if isinstance(obj, dict) else None
    if isinstance(metadata, dict) and "namespace" in metadata:
        namespace = metadata["namespace"]
        if not (isinstance(namespace, str) and _STRING_REFERENCE.search(namespace)):
            del metadata["namespace"]


def _substitute(value: Any, values: Mapping[str, str]) -> Any:
    if isinstance(value, dict):
        return {_substitute_key(k, values): _substitute(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(item, values) for item in value]
    if isinstance(value, str):
        text, as_string = evaluate(value, values)
        return text if as_string else _json_or_string(text)
    return value


def _substitute_key(key: str, values: Mapping[str, str]) -> str:
    text, as_string = evaluate(key, values)
    if as_string:
        return text
    decoded = _json_or_string(text)
    if not isinstance(decoded, str):
        raise TemplateError([f"map key {key!r} would become the non-string {decoded!r}"])
    return decoded


def evaluate(text: str, values: Mapping[str, str]) -> tuple[str, bool]:
    """OpenShift's substitution of one string: the result, and whether it stays a string.

    A string that is exactly ``${{P}}`` (P declared) becomes P's value, to be decoded as
    JSON; otherwise each ``${P}`` found in the original text replaces its first occurrence
    in the result so far, exactly as OpenShift does.
    """
    whole = _WHOLE_REFERENCE.fullmatch(text)
    if whole and whole.group(1) in values:
        return values[whole.group(1)], False
    result = text
    for match in _STRING_REFERENCE.finditer(text):
        if match.group(1) in values:
            result = result.replace(match.group(0), values[match.group(1)], 1)
    return result, True


def _json_or_string(text: str) -> Any:
    def refuse(constant: str) -> Any:
        raise ValueError(constant)  # Go's decoder knows no NaN or Infinity

    try:
        return json.loads(text, parse_constant=refuse)
    except ValueError:
        return text
