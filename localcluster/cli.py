"""The ``localcluster`` command: ``serve``, ``example``, ``swift`` (a Swift all-in-one), and
``up``/``down`` (Swift, the local cluster and pman together).

``serve`` is the local cluster's own; the others belong to the development stack (the
``devstack`` package), which the command loads only when one of them is run.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from types import ModuleType

from localcluster.node import mounts

log = logging.getLogger("localcluster")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="localcluster",
        description="A one-machine Kubernetes API whose pods run as local processes.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser("serve", help="serve the Kubernetes API until interrupted")
    serve.add_argument("--kubeconfig", required=True, help="where to write the kubeconfig")
    serve.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free one)")
    serve.add_argument("--tls", action="store_true", help="serve HTTPS with a generated CA")
    serve.add_argument("--state-dir", help="volumes, logs and TLS files (default: a temporary dir)")
    serve.add_argument("--audit-log", help="append one JSON line per API request to this file")
    serve.add_argument(
        "--mount-mode",
        choices=("auto", *mounts.MODES),
        default="auto",
        help="how volumes reach containers (default: the best this machine allows)",
    )
    serve.add_argument(
        "--memory",
        choices=("auto", "watchdog"),
        default="auto",
        help="how memory limits are enforced (default: a cgroup where writable)",
    )
    serve.add_argument("-v", "--verbose", action="store_true", help="log every request")
    commands.add_parser("example", help="run the local cluster's example Job and show it")
    commands.add_parser(
        "swift", help="run an OpenStack Swift all-in-one on 127.0.0.1", add_help=False
    )
    commands.add_parser(
        "up", help="run Swift, the local cluster and pman together, wired", add_help=False
    )
    commands.add_parser("down", help="stop what `localcluster up` started", add_help=False)
    return parser


def _serve(args: argparse.Namespace) -> int:
    from localcluster.cluster import LocalCluster

    port = args.port
    if not 0 <= port <= 65535:
        log.error("--port must be between 0 and 65535, not %d", port)
        return 2
    cluster = LocalCluster(
        args.state_dir,
        port=port,
        tls=args.tls,
        audit_log=args.audit_log,
        kubeconfig=args.kubeconfig,
        mount_mode=args.mount_mode,
        memory_mode=args.memory,
    )
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        cluster.start()
    except (OSError, RuntimeError) as exc:
        log.error("cannot start: %s", exc)
        return 1
    log.info("kubeconfig written to %s", cluster.kubeconfig_path)
    if args.audit_log:
        log.info("audit log: %s", args.audit_log)
    try:
        stop.wait()
        log.info("stopping")
    finally:
        cluster.stop()
    return 0


# The development stack's commands. Their modules are imported only when one of them runs:
# the local cluster does not depend on the development stack, and `serve` loads none of it.
DEVSTACK_MODULES = {
    "swift": "devstack.swiftaio",
    "up": "devstack.up",
    "down": "devstack.up",
    "example": "devstack.examplejob",
}


def _devstack(command: str) -> ModuleType | None:
    """The development stack's module behind ``command``, or None (said) when not installed."""
    name = DEVSTACK_MODULES[command]
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name not in (name, name.partition(".")[0]):
            raise
        print(
            f"localcluster: the {command} command is not available in this installation "
            f"(module {name} is missing)",
            file=sys.stderr,
        )
        return None


def _swift(argv: Sequence[str]) -> int:
    module = _devstack("swift")
    return 2 if module is None else module.main(list(argv))


def _up_or_down(command: str, argv: Sequence[str]) -> int:
    module = _devstack(command)
    if module is None:
        return 2
    return module.up(argv) if command == "up" else module.down(argv)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["swift"]:
        return _swift(argv[1:])
    if argv[:1] in (["up"], ["down"]):
        return _up_or_down(argv[0], argv[1:])
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if getattr(args, "verbose", False) else logging.INFO,
        format="%(asctime)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    if getattr(args, "verbose", False) is False:
        logging.getLogger("localcluster.http").setLevel(logging.WARNING)
    if args.command == "serve":
        return _serve(args)
    module = _devstack("example")
    return 2 if module is None else module.run_example()
