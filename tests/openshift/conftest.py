"""Fixtures of the OpenShift tier: every template processed with both sets of parameters."""

from __future__ import annotations

import pytest

from tests.support.openshift.templates import TEMPLATES, VARIANTS, Obj, process


@pytest.fixture(params=[(t, v) for t in TEMPLATES for v in VARIANTS], ids=lambda p: "-".join(p))
def processed(request: pytest.FixtureRequest) -> tuple[str, str, list[Obj]]:
    """(template, variant, objects) for every template and both sets of parameters."""
    name, variant = request.param
    return name, variant, process(name, variant)
