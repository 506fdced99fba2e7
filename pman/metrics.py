"""Prometheus metrics of one pman process: HTTP requests, jobs submitted, Kubernetes calls.

Each app gets its own registry, so several apps in one process (tests, tools)
never collide; ``/metrics`` serves it in the text exposition format.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST
# Label values are a closed set, whatever a client sends: every new value is a new series,
# held in memory and in every scrape for as long as the process lives.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
OTHER = "other"


class Metrics:
    """The counters and histograms pman updates."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.http_requests = Counter(
            "pman_http_requests",
            "HTTP requests answered, by route, method and status code.",
            ["route", "method", "code"],
            registry=self.registry,
        )
        self.jobs_submitted = Counter(
            "pman_jobs_submitted",
            "Jobs created in Kubernetes.",
            registry=self.registry,
        )
        self.cached_log_bytes = Gauge(
            "pman_cached_log_bytes",
            "Memory held by the logs of ended processors kept for status requests.",
            registry=self.registry,
        )
        self.kube_latency = Histogram(
            "pman_kubernetes_request_duration_seconds",
            "Kubernetes API requests by operation, including failed ones.",
            ["operation"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )

    def count_request(self, route: str, method: str, status: int) -> None:
        """Count one answered request. ``route`` is the matched rule (or "unmatched"): a
        closed set; a method outside :data:`METHODS` counts as "other", and so does a status
        outside 100-599 (pman answers none)."""
        method = method if method in METHODS else OTHER
        code = str(status) if 100 <= status <= 599 else OTHER
        self.http_requests.labels(route, method, code).inc()

    @contextmanager
    def kube_call(self, operation: str) -> Iterator[None]:
        """Time one Kubernetes request."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.kube_latency.labels(operation).observe(time.perf_counter() - start)

    def kube_requests(self) -> int:
        """Kubernetes requests made so far (watch connections included)."""
        total = 0
        for metric in self.registry.collect():
            if metric.name == "pman_kubernetes_request_duration_seconds":
                total += sum(int(s.value) for s in metric.samples if s.name.endswith("_count"))
        return total

    def exposition(self) -> bytes:
        """The registry in Prometheus' text format."""
        return generate_latest(self.registry)
