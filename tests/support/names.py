"""Names of the objects tests create: unique, so tests sharing a cluster or a Swift never
meet."""

from __future__ import annotations

import secrets


def unique_name(prefix: str) -> str:
    """A name no other test uses: ``<prefix>-<8 random characters>`` (DNS-1123 safe)."""
    return f"{prefix}-{secrets.token_hex(4)}"
