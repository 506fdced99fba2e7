"""What pman, its client and the publisher say of a request that failed to connect."""

from __future__ import annotations

MARKERS = ("Connection refused", "Name or service not known", "timed out", "reset")


def short_reason(error: BaseException) -> str:
    """The reason in a few words: connection errors nest several reprs, and the innermost
    reason is the useful part; otherwise the message's first line."""
    text = str(error)
    for marker in MARKERS:
        if marker in text:
            return marker
    return text.splitlines()[0][:200] if text else type(error).__name__
