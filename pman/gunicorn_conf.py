"""gunicorn settings for the container image: ``gunicorn -c python:pman.gunicorn_conf``.

Each worker builds its own app (and its own watches) after the fork, because
threads do not survive one; so the app is never preloaded.

pman refuses to start, with one line saying why, when its settings are invalid or no
Kubernetes configuration exists at all: neither mends while pman runs. A cluster that is
configured but does not answer is another matter: pman starts, and /readyz answers 503
until the cluster does.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from pman.cli import configure_logging, warn_if_exposed
from pman.errors import ClusterUnavailable, SettingsError
from pman.kube import load_configuration
from pman.settings import Settings

# pman's own lines beside gunicorn's (which do not go through the root logger); the workers
# are forked from this process and keep the handler.
configure_logging()

bind = os.environ.get("PMAN_BIND", "0.0.0.0:5010")
workers = int(os.environ.get("PMAN_WORKERS", "2"))
# gthread keeps idle kept-alive connections in its poller, but a request whose headers or
# body are still arriving holds one of these threads until it is complete, however slowly the
# client sends it: with 8, a dozen slow clients stopped pman for everyone. A waiting thread
# costs little memory, and connections spread unevenly over the workers, so each worker has
# enough for 100 slow clients alone, with room for real requests.
threads = int(os.environ.get("PMAN_THREADS", "128"))
worker_class = "gthread"
# Clients wait up to 100 s; a request stuck longer than this is better restarted.
timeout = 120
preload_app = False
accesslog = "-"
# Worker heartbeats on a tmpfs: the image's filesystem may be read-only or slow.
worker_tmp_dir = "/dev/shm"  # noqa: S108
# The control socket would live in $HOME, which an arbitrary UID cannot write.
control_socket_disable = True
wsgi_app = "pman.app:create_app()"


def on_starting(server: Any) -> None:
    """Exit before listening when pman could not serve: otherwise every worker would fail
    to build the app, each with a traceback, and gunicorn stop with "Worker failed to
    boot", which tells an operator less."""
    try:
        load_configuration(Settings.from_env(os.environ))
    except (SettingsError, ClusterUnavailable) as error:
        print(f"pman: {error}", file=sys.stderr, flush=True)
        sys.exit(2)


def when_ready(server: Any) -> None:
    """Warn once at start (``server`` is gunicorn's arbiter) when pman listens beyond
    loopback without a token."""
    settings = Settings.from_env(os.environ)
    for address in server.address:
        if isinstance(address, tuple):
            warn_if_exposed(str(address[0]), settings)
