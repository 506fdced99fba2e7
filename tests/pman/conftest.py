"""Fixtures of pman's tests."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.bodies import pfcon_request


@pytest.fixture
def pfcon_body() -> dict[str, Any]:
    return pfcon_request()
