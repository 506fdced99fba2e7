"""What the whole suite shares: the session's real servers (a Swift, the local cluster or a
real one), and the tiers every test falls in.

A test's tier is a marker set here from what it uses, so ``pytest -m unit`` runs in seconds:

- ``e2e``: under ``tests/e2e`` (pman as its own process, pods, Swift, all real);
- ``integration``: uses a real server, through the session fixtures below (Swift, Keystone,
  the cluster) or because its module says so with ``pytestmark``;
- ``unit``: everything else (pure functions, an app over HTTP with no server behind it).
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = [
    "tests.support.cluster",
    "tests.support.swift",
    "tests.support.isolation",
    "tests.support.pman_cluster",
    "tests.support.pfcon",
    "tests.support.data",
]

TIERS = ("unit", "integration", "e2e", "images")
SERVER_FIXTURES = {"swift_server", "kube_cluster", "keystone_swift"}
E2E = Path(__file__).parent / "tests" / "e2e"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if any(item.get_closest_marker(tier) for tier in TIERS):
            continue
        if E2E in Path(item.path).parents:
            item.add_marker(pytest.mark.e2e)
        elif SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)
        else:
            item.add_marker(pytest.mark.unit)
