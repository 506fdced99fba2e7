"""The Flask application: pman's REST API over HTTP.

``create_app()`` reads the settings from the environment unless it is given them, wires
the Kubernetes and Swift boundaries to the job service, registers the API front ends
(:mod:`pman.api`) and starts the status cache's watches. It holds no route itself.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any

from flask import Flask

from pman.api import common, data, largeobjects, ops, pfcon, v6
from pman.api.openapi import openapi_document
from pman.cache import StatusCache
from pman.kube import Kube
from pman.metrics import Metrics
from pman.pfconjobs import PfconJobs
from pman.service import JobService
from pman.settings import Settings, check_pfcon, check_pod_credentials
from pman.swift import Store
from pman.tempurls import TempUrls

log = logging.getLogger("pman")

# Every route pman serves, and the request handling they share. The pfcon API registers
# itself under PFCON_BASE_PATH, and only when it is on.
BLUEPRINTS = (
    common.blueprint,
    v6.blueprint,
    data.blueprint,
    largeobjects.blueprint,
    ops.blueprint,
    pfcon.blueprint,
)


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
    pfcon: PfconJobs | None = None
    """The pfcon API's jobs, when it is on (:mod:`pman.api.pfcon`)."""

    def close(self) -> None:
        """Stop the watches and release Kubernetes connections."""
        if self.jobs.cache:
            self.jobs.cache.stop()
        self.jobs.kube.close()


def create_app(settings: Settings | None = None) -> Flask:
    """The pman WSGI application; settings from the environment when not given."""
    settings = settings or Settings.from_env(os.environ)
    check_pfcon(settings)
    check_pod_credentials(settings)
    metrics = Metrics()
    kube = Kube(settings, metrics=metrics)
    cache = StatusCache(kube) if settings.status_cache else None
    app = Flask("pman")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    store = _store(settings)
    tempurls = _tempurls(settings, store)
    # In the volume modes only the pfcon API's jobs use Swift.
    jobs = JobService(
        settings, kube, cache=cache, tempurls=None if settings.volume_storage else tempurls
    )
    app.extensions["pman"] = Pman(
        settings=settings,
        jobs=jobs,
        store=store,
        metrics=metrics,
        pfcon=_pfcon(settings, jobs, store, tempurls),
    )
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
    if cache:
        cache.start()
    return app


def _tempurls(settings: Settings, store: Store | None) -> TempUrls | None:
    """What pman does for job pods that hold no secret, when they hold none; says so."""
    if not settings.tempurl_pods or store is None:
        return None
    where = settings.pman_service_url
    log.info(
        "job pods reach Swift through temporary URLs pman signs (SWIFT_POD_CREDENTIALS=tempurl): "
        "no Secret in them; %s",
        f"large objects written through {where}"
        if where
        else "large files go as single objects (PMAN_SERVICE_URL is not set)",
    )
    return TempUrls(settings, store)


def _pfcon(
    settings: Settings, jobs: JobService, store: Store | None, tempurls: TempUrls | None
) -> PfconJobs | None:
    """The pfcon API's jobs when it is on; says at start whether it is."""
    if not settings.pfcon_enabled or store is None:
        if settings.pfcon_user and settings.pfcon_password:
            log.warning(
                "the pfcon API is off: it needs Swift credentials, and this pman "
                "(STORAGE_TYPE=%s) has none",
                settings.storage_type,
            )
        else:
            log.info("the pfcon API is off (set PFCON_USER and PFCON_PASSWORD to serve it)")
        return None
    log.info(
        "the pfcon API is on at %s: CUBE's container %s, pman's bookkeeping in %s",
        settings.pfcon_base,
        settings.swift_container_name,
        settings.bookkeeping_container,
    )
    return PfconJobs(settings, jobs, store, tempurls=tempurls)


def _store(settings: Settings) -> Store | None:
    credentials = settings.swift_credentials
    if credentials is None:
        return None
    return Store(
        credentials, source=settings.swift_credentials_file, timeout=settings.swift_timeout
    )
