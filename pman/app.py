"""The Flask application: pman's REST API over HTTP.

``create_app()`` reads the settings from the environment unless it is given them, wires
the Kubernetes and Swift boundaries to the job service, registers the API front ends
(:mod:`pman.api`) and starts the status cache's watches. It holds no route itself.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from flask import Flask

from pman.api import common, data, ops, v6
from pman.api.openapi import openapi_document
from pman.cache import StatusCache
from pman.kube import Kube
from pman.metrics import Metrics
from pman.service import JobService
from pman.settings import Settings
from pman.swift import Store

# Every route pman serves, and the request handling they share.
BLUEPRINTS = (common.blueprint, v6.blueprint, data.blueprint, ops.blueprint)


@dataclass
class Pman:
    """What one app holds: settings, the job service, Swift (None when pman has no
    credentials), the metrics and the OpenAPI document. The front ends reach it as
    ``current_app.extensions["pman"]`` (:func:`pman.api.common.pman`)."""

    settings: Settings
    jobs: JobService
    store: Store | None
    metrics: Metrics
    openapi: dict[str, Any] = field(default_factory=openapi_document)

    def close(self) -> None:
        """Stop the watches and release Kubernetes connections."""
        if self.jobs.cache:
            self.jobs.cache.stop()
        self.jobs.kube.close()


def create_app(settings: Settings | None = None) -> Flask:
    """The pman WSGI application; settings from the environment when not given."""
    settings = settings or Settings.from_env(os.environ)
    metrics = Metrics()
    kube = Kube(settings, metrics=metrics)
    cache = StatusCache(kube) if settings.status_cache else None
    app = Flask("pman")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["pman"] = Pman(
        settings=settings,
        jobs=JobService(settings, kube, cache=cache),
        store=_store(settings),
        metrics=metrics,
    )
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
    if cache:
        cache.start()
    return app


def _store(settings: Settings) -> Store | None:
    credentials = settings.swift_credentials
    if credentials is None:
        return None
    return Store(
        credentials, source=settings.swift_credentials_file, timeout=settings.swift_timeout
    )
