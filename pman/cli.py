"""The ``pman`` command. ``pman serve`` runs the API with werkzeug for development;
production runs ``create_app`` under gunicorn (see the Dockerfile). The client commands
(submit, status, logs, delete, push, pull) are in :mod:`pman.client.parser`.

Subcommands register themselves in :func:`build_parser`, one function each.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import signal
import sys

from pman import __version__
from pman.client.parser import add_client_commands
from pman.errors import PmanError, SettingsError
from pman.settings import Settings

log = logging.getLogger("pman")
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5010


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every ``pman`` subcommand."""
    parser = argparse.ArgumentParser(prog="pman", description="Run container jobs on Kubernetes.")
    parser.add_argument("--version", action="version", version=f"pman {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="serve the REST API (development server)",
        description="Serve the REST API with werkzeug's threaded server. Settings come "
        "from environment variables (see README.rst); KUBECONFIG names the cluster.",
    )
    serve.add_argument("--host", default=DEFAULT_HOST, help=f"address (default {DEFAULT_HOST})")
    serve.add_argument("--port", type=_port, default=DEFAULT_PORT, help="port (default 5010)")
    serve.set_defaults(run=run_serve)
    add_client_commands(commands)
    return parser


def configure_logging() -> None:
    """pman's own log lines (uploads, changed credentials, watch retries) and the
    development server's request lines on stderr; other libraries' only from warnings up
    (python-swiftclient logs failed requests at INFO, with the start of the token)."""
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    for name in ("pman", "werkzeug"):
        logging.getLogger(name).setLevel(logging.INFO)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``pman`` console script."""
    args = build_parser().parse_args(argv)
    configure_logging()
    try:
        return args.run(args)
    except (SettingsError, PmanError) as error:
        print(f"pman: {error}", file=sys.stderr)
        return 2


def run_serve(args: argparse.Namespace) -> int:
    """``pman serve``: until interrupted."""
    from werkzeug.serving import run_simple

    from pman.app import create_app

    settings = Settings.from_env(os.environ)
    warn_if_exposed(args.host, settings)
    app = create_app(settings)
    # Installed explicitly: a shell without job control starts background commands with
    # SIGINT ignored, and SIGTERM's default would skip closing the watches.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _interrupt)
    try:
        run_simple(args.host, args.port, app, threaded=True)
    finally:
        app.extensions["pman"].close()
    return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def warn_if_exposed(host: str, settings: Settings) -> bool:
    """Warn when pman listens beyond loopback without a token; True if it warned."""
    if settings.api_token or is_loopback(host):
        return False
    log.warning(
        "listening on %s without PMAN_API_TOKEN: anyone who can reach this address can "
        "run containers in namespace %r",
        host,
        settings.job_namespace,
    )
    return True


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _port(raw: str) -> int:
    try:
        port = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{raw} is not between 0 and 65535")
    return port


if __name__ == "__main__":
    sys.exit(main())
