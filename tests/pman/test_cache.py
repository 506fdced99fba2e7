"""The status cache never serves a copy it stopped keeping up to date."""

from __future__ import annotations

from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from pman.cache import StatusCache
from pman.kube import Kube
from pman.settings import Settings
from tests.support.fake_api import fake_api
from tests.support.waiting import eventually

EMPTY_LIST = b'{"kind":"List","metadata":{"resourceVersion":"7"},"items":[]}'


class _GarbledWatch(BaseHTTPRequestHandler):
    """A stand-in API server behind a broken proxy: lists answer, watches send garbage."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = b"this is not an event\n" if "watch=true" in self.path else EMPTY_LIST
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def garbled_api(tmp_path: Path) -> Iterator[str]:
    with fake_api(_GarbledWatch, tmp_path) as kubeconfig:
        yield kubeconfig


def test_an_unreadable_watch_event_leaves_the_cache_unsynced_and_retrying(garbled_api):
    kube = Kube(Settings(kubeconfig=garbled_api))
    cache = StatusCache(kube, watch_timeout=5)
    cache.start()
    try:
        assert cache.wait_synced(10)
        # Each round lists (synced) and then fails on the watch (unsynced again): a copy that
        # stopped following must never be taken as current, and the informer keeps retrying.
        eventually(
            lambda: _count(kube, "watch jobs") >= 4, timeout=10, interval=0.05, what="4 watches"
        )
        assert _count(kube, "list jobs") >= 2
        eventually(lambda: not cache.synced, timeout=10, interval=0.01, what="the cache unsynced")
        assert cache.lookup("any-job") is None
    finally:
        cache.stop()
        kube.close()
    assert not cache.synced


def _count(kube: Kube, operation: str) -> int:
    for metric in kube.metrics.registry.collect():
        for sample in metric.samples:
            if sample.name.endswith("_count") and sample.labels.get("operation") == operation:
                return int(sample.value)
    return 0
