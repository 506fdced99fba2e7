"""Run a pman app over real HTTP (werkzeug's threaded server) for the duration of a test."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from flask import Flask
from werkzeug.serving import make_server

from pman.app import create_app
from pman.settings import Settings


@contextmanager
def serving(app: Flask) -> Iterator[str]:
    """Serve ``app`` on a free loopback port; yields its base URL, stops it after."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="pman-http", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


@contextmanager
def pman_server(settings: Settings) -> Iterator[tuple[str, Flask]]:
    """A pman app built from ``settings``, served over HTTP, closed afterwards."""
    app = create_app(settings)
    try:
        with serving(app) as url:
            yield url, app
    finally:
        app.extensions["pman"].close()


def unreachable_kubeconfig(directory: Path) -> Path:
    """A kubeconfig naming a loopback port nothing listens on."""
    path = directory / "unreachable-kubeconfig"
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: c, cluster: {server: 'http://127.0.0.1:9'}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
    )
    return path
