"""Small helpers for object metadata: timestamps, uids, generated names, quantities."""

from __future__ import annotations

import calendar
import re
import secrets
import time
import uuid
from decimal import Decimal, InvalidOperation
from typing import Any

# The alphabet the API server uses for generateName suffixes (no vowels, no look-alikes).
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"

_BINARY_SUFFIXES = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL_SUFFIXES = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal(10**3),
    "M": Decimal(10**6),
    "G": Decimal(10**9),
    "T": Decimal(10**12),
    "P": Decimal(10**15),
    "E": Decimal(10**18),
}
_QUANTITY = re.compile(r"([+-]?[0-9.]+)([eE][+-]?[0-9]+|Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]?)")


def timestamp(when: float | None = None) -> str:
    """RFC 3339 time in UTC with whole seconds, as ``metav1.Time`` serialises."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if when is None else when))


def micro_timestamp(when: float | None = None) -> str:
    """RFC 3339 time with microseconds, as ``metav1.MicroTime`` serialises."""
    when = time.time() if when is None else when
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(when)) + f".{int(when % 1 * 1e6):06d}Z"


def parse_timestamp(text: str) -> float:
    """Seconds since the epoch of a timestamp written by ``timestamp``."""
    return float(calendar.timegm(time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S")))


def new_uid() -> str:
    return str(uuid.uuid4())


def name_suffix(length: int = 5) -> str:
    return "".join(secrets.choice(_NAME_ALPHABET) for _ in range(length))


def parse_quantity(value: Any) -> Decimal:
    """The value of a resource quantity such as ``64Mi``, ``0.5``, ``100m`` or ``1e3``.

    Raises ValueError for anything the API server would refuse.
    """
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"not a quantity: {value!r}")
    # Surrounding spaces are dropped, as the API server does when it decodes a quantity.
    match = _QUANTITY.fullmatch(str(value).strip())
    if not match:
        raise ValueError(f"not a quantity: {value!r}")
    number, suffix = match.groups()
    try:
        amount = Decimal(number)
    except InvalidOperation as exc:
        raise ValueError(f"not a quantity: {value!r}") from exc
    if suffix in _BINARY_SUFFIXES:
        return amount * _BINARY_SUFFIXES[suffix]
    if suffix[:1] in "eE" and suffix:
        return amount * Decimal(10) ** int(suffix[1:])
    return amount * _DECIMAL_SUFFIXES[suffix]


def labels_of(obj: dict[str, Any]) -> dict[str, str]:
    return obj.get("metadata", {}).get("labels") or {}
