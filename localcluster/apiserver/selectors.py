"""Label and field selectors with the syntax and meaning of the Kubernetes API.

``parse_label_selector("app=x,tier in (a,b),!legacy")`` and
``parse_field_selector("metadata.name=x,status.phase!=Failed")`` return predicates; a
syntax error raises ``ValueError`` whose text the API returns as a 400.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

Labels = Mapping[str, str]

_TOKEN = re.compile(r"\s*(!=|==|=|!|\(|\)|,|>|<|[^\s!=(),<>]+)")


@dataclass(frozen=True)
class Requirement:
    """One term of a label selector."""

    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!", ">", "<"
    values: tuple[str, ...] = ()

    def matches(self, labels: Labels) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.op == "exists":
            return present
        if self.op == "!":
            return not present
        if self.op in ("=", "in"):
            return present and value in self.values
        if self.op in ("!=", "notin"):
            return not present or value not in self.values
        if not present:
            return False
        try:
            number, bound = int(value or ""), int(self.values[0])
        except ValueError:
            return False
        return number > bound if self.op == ">" else number < bound


@dataclass(frozen=True)
class LabelSelector:
    requirements: tuple[Requirement, ...]

    def matches(self, labels: Labels) -> bool:
        return all(r.matches(labels) for r in self.requirements)

    def exact(self) -> dict[str, str]:
        """The ``key=value`` terms, used to narrow lookups before matching."""
        return {r.key: r.values[0] for r in self.requirements if r.op == "=" and r.values}


def _tokens(text: str) -> list[str]:
    tokens, pos = [], 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match:
            if text[pos:].strip():
                raise ValueError(f"unable to parse requirement: {text!r}")
            break
        tokens.append(match.group(1))
        pos = match.end()
    return tokens


def _value_list(tokens: list[str], pos: int, text: str) -> tuple[tuple[str, ...], int]:
    if pos >= len(tokens) or tokens[pos] != "(":
        raise ValueError(f"found '{_at(tokens, pos)}', expected: '(' in selector {text!r}")
    pos += 1
    values: list[str] = []
    while pos < len(tokens) and tokens[pos] != ")":
        if tokens[pos] == ",":
            pos += 1
            continue
        values.append(tokens[pos])
        pos += 1
    if pos >= len(tokens):
        raise ValueError(f"found '', expected: ')' in selector {text!r}")
    return tuple(values), pos + 1


def _at(tokens: list[str], pos: int) -> str:
    return tokens[pos] if pos < len(tokens) else ""


def _requirement(tokens: list[str], pos: int, text: str) -> tuple[Requirement, int]:
    if tokens[pos] == "!":
        key = _at(tokens, pos + 1)
        _check_key(key, text)
        return Requirement(key, "!"), pos + 2
    key = tokens[pos]
    _check_key(key, text)
    op = _at(tokens, pos + 1)
    if op in ("", ","):
        return Requirement(key, "exists"), pos + 1
    if op in ("in", "notin"):
        values, pos = _value_list(tokens, pos + 2, text)
        return Requirement(key, op, values), pos
    if op in ("=", "==", "!=", ">", "<"):
        value = _at(tokens, pos + 2)
        if value in (",", "(", ")", "!", "=", "==", "!="):
            raise ValueError(f"found '{value}', expected: identifier in selector {text!r}")
        consumed = 3 if value else 2
        return Requirement(key, "=" if op == "==" else op, (value,)), pos + consumed
    raise ValueError(f"found '{op}', expected: in, notin, =, ==, !=, gt, lt in selector {text!r}")


def _check_key(key: str, text: str) -> None:
    if not key or key in ("(", ")", ",", "!", "=", "==", "!="):
        raise ValueError(f"found '{key}', expected: identifier in selector {text!r}")


def parse_label_selector(text: str | None) -> LabelSelector:
    tokens = _tokens(text or "")
    requirements: list[Requirement] = []
    pos = 0
    while pos < len(tokens):
        if tokens[pos] == ",":
            pos += 1
            continue
        requirement, pos = _requirement(tokens, pos, text or "")
        requirements.append(requirement)
        if pos < len(tokens) and tokens[pos] != ",":
            raise ValueError(f"found '{tokens[pos]}', expected: ',' in selector {text!r}")
    return LabelSelector(tuple(requirements))


@dataclass(frozen=True)
class FieldSelector:
    terms: tuple[tuple[str, str, str], ...]  # (field, "=" or "!=", value)

    def matches(self, fields: Mapping[str, str]) -> bool:
        for name, op, value in self.terms:
            equal = fields.get(name, "") == value
            if equal != (op == "="):
                return False
        return True

    def names(self) -> set[str]:
        return {name for name, _, _ in self.terms}

    def exact(self, name: str) -> str | None:
        for field, op, value in self.terms:
            if field == name and op == "=":
                return value
        return None


def _split_unescaped(text: str, sep: str) -> list[str]:
    parts, current, escaped = [], "", False
    for char in text:
        if escaped:
            current += char
            escaped = False
        elif char == "\\":
            current += char
            escaped = True
        elif char == sep:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return parts


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def parse_field_selector(text: str | None) -> FieldSelector:
    terms = []
    for part in _split_unescaped(text or "", ","):
        if not part.strip():
            continue
        for op_text, op in (("!=", "!="), ("==", "="), ("=", "=")):
            index = part.find(op_text)
            if index > 0:
                terms.append((part[:index].strip(), op, _unescape(part[index + len(op_text) :])))
                break
        else:
            raise ValueError(f"invalid selector: '{text}'; can't understand '{part}'")
    return FieldSelector(tuple(terms))


def label_selector_from_object(selector: Mapping | None) -> Callable[[Labels], bool]:
    """A predicate from a ``LabelSelector`` object (``matchLabels``, ``matchExpressions``)."""
    selector = selector or {}
    requirements = [
        Requirement(k, "=", (v,)) for k, v in (selector.get("matchLabels") or {}).items()
    ]
    ops = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}
    for expr in selector.get("matchExpressions") or []:
        op = ops.get(expr.get("operator", ""), "in")
        requirements.append(Requirement(expr.get("key", ""), op, tuple(expr.get("values") or ())))
    return LabelSelector(tuple(requirements)).matches
