"""An HTTP server standing in for the Kubernetes API where no real one can misbehave as a
test needs (garbled watch events, every request refused), and a kubeconfig for it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


@contextmanager
def fake_api(handler: type[BaseHTTPRequestHandler], directory: Path) -> Iterator[str]:
    """Serve ``handler`` on a free loopback port; yields the path of a kubeconfig for it."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    kubeconfig = directory / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        f"clusters: [{{name: c, cluster: {{server: 'http://127.0.0.1:{server.server_port}'}}}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
    )
    try:
        yield str(kubeconfig)
    finally:
        server.shutdown()
        server.server_close()
