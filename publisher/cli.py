"""The `publisher` command: download, upload, publish. The only place the environment is read.

Exit codes (also in publisher/README.rst): 0 done; 1 unexpected error; 2 bad usage;
3 no usable credentials; 4 credentials refused; 5 Swift or auth service unreachable;
6 container missing; 7 nothing to download / object vanished; 8 checksum mismatch;
9 unsafe object name; 10 Swift kept failing or refused; 11 Kubernetes API error;
12 watched pod gone or wait deadline passed; 13 local disk error; 14 the stage-in plan
refuses the input; 15 a temporary URL expired or was refused; 128+N killed by signal N.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import signal
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from publisher import __version__
from publisher.credentials import resolve
from publisher.errors import Interrupted, PublisherError, TempUrlRefused, UsageError
from publisher.progress import Progress, Reporter
from publisher.swift import RetryPolicy, SwiftStore, TempUrlStore
from publisher.transfer import SEGMENT_THREADS, THREADS, object_prefix
from publisher.upload import UploadOptions
from swiftcreds.tempurl import NotATempUrl, TempUrl

log = logging.getLogger("publisher")

_RUN_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
# Matched against the whole text (re.fullmatch).
_SIZE = re.compile(r"\s*(\d+)\s*([kmgt]?)(i?b?)\s*", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


@dataclass(frozen=True)
class SwiftLocation:
    """A parsed ``swift://CONTAINER/PREFIX``, or a temporary URL of a prefix or object
    (``signed``), which names its container and prefix (or object) too."""

    container: str
    prefix: str
    signed: TempUrl | None = None

    def __str__(self) -> str:
        if self.signed is not None:  # never its signature
            return f"{self.signed.storage_url}/{self.container}/{self.prefix} (temporary URL)"
        return f"swift://{self.container}/{self.prefix}"


def location(method: str) -> Callable[[str], SwiftLocation]:
    """``swift://CONTAINER/PREFIX``, or a temporary URL of a prefix allowing `method`."""

    def parse(text: str) -> SwiftLocation:
        if not text.startswith(("http://", "https://")):
            return parse_location(text)
        signed = _temp_url(text, method)
        prefix = signed.path.strip("/")
        if not signed.prefix or not object_prefix(prefix).startswith(signed.name):
            raise argparse.ArgumentTypeError(
                "expected a prefix temporary URL (with temp_url_prefix) whose path is under "
                "its prefix"
            )
        return SwiftLocation(signed.container, prefix, signed)

    return parse


def object_location(method: str) -> Callable[[str], SwiftLocation]:
    """``swift://CONTAINER/OBJECT``, or a temporary URL of that object allowing `method`."""

    def parse(text: str) -> SwiftLocation:
        if not text.startswith(("http://", "https://")):
            return parse_object(text)
        signed = _temp_url(text, method)
        if signed.path.endswith("/") or not signed.covers(signed.container, signed.path):
            raise argparse.ArgumentTypeError("expected the temporary URL of an object")
        return SwiftLocation(signed.container, signed.path, signed)

    return parse


def temp_url_option(text: str) -> TempUrl:
    """``METHOD=URL``: a temporary URL and the method it was signed for."""
    method, sep, url = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError("expected METHOD=URL, e.g. DELETE=https://...")
    return _temp_url(url, method)


def _temp_url(text: str, method: str) -> TempUrl:
    try:
        return TempUrl.parse(text, method)
    except NotATempUrl as error:
        raise argparse.ArgumentTypeError(f"not a usable temporary URL: {error}") from None


def parse_location(text: str) -> SwiftLocation:
    if not text.startswith("swift://"):
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected swift://CONTAINER/PREFIX or a temporary URL"
        )
    container, _, prefix = text[len("swift://") :].partition("/")
    prefix = prefix.strip("/")
    if not container:
        raise argparse.ArgumentTypeError(f"{text!r}: the container name is empty")
    if any(part in ("", ".", "..") for part in prefix.split("/")) and prefix:
        raise argparse.ArgumentTypeError(f"{text!r}: empty, '.' or '..' segment in the prefix")
    return SwiftLocation(container, prefix)


def parse_object(text: str) -> SwiftLocation:
    """``swift://CONTAINER/OBJECT``: one object (its name in ``prefix``)."""
    location = parse_location(text)
    if not location.prefix:
        raise argparse.ArgumentTypeError(f"{text!r}: expected swift://CONTAINER/OBJECT")
    return location


def parse_size(text: str) -> int:
    match = _SIZE.fullmatch(text)
    if not match or int(match.group(1)) == 0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a size such as 64MiB or 1G")
    return int(match.group(1)) * _UNITS[match.group(2).lower()]


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number of at least 1")
    return int(text)


def run_id(text: str) -> str:
    if not _RUN_ID.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected 1 to 64 letters, digits, '.', '_' or '-'"
        )
    return text


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--credentials",
        metavar="FILE",
        help="swift-credentials.cfg; default: ST_*/OS_* variables, then "
        "/etc/swift/swift-credentials.cfg",
    )
    common.add_argument(
        "--threads",
        type=positive_int,
        default=THREADS,
        help=f"parallel requests ({THREADS})",
    )
    common.add_argument(
        "--segment-size",
        type=parse_size,
        default=UploadOptions.segment_size,
        help="files above this go as Static Large Objects in segments this big (64MiB)",
    )
    common.add_argument(
        "--segment-threads",
        type=positive_int,
        default=SEGMENT_THREADS,
        help=f"large-object segments moved at once ({SEGMENT_THREADS})",
    )
    common.add_argument(
        "--retries",
        type=positive_int,
        default=RetryPolicy.attempts,
        help="tries per request on transient errors, with exponential backoff (8)",
    )
    common.add_argument(
        "--progress-interval",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="seconds between progress lines; 0 for none (5)",
    )
    common.add_argument(
        "--temp-url",
        dest="temp_urls",
        type=temp_url_option,
        action="append",
        default=[],
        metavar="METHOD=URL",
        help="another temporary URL the command may use, for METHOD (GET, PUT or DELETE): "
        "repeat it for each method and prefix (with temporary URLs as locations only)",
    )
    common.add_argument("--json", action="store_true", help="print a JSON summary at the end")
    common.add_argument("-v", "--verbose", action="store_true", help="log more detail")

    parser = argparse.ArgumentParser(
        prog="publisher",
        description="Move job data between OpenStack Swift and a directory.",
    )
    parser.add_argument("--version", action="version", version=f"publisher {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    down = commands.add_parser(
        "download", parents=[common], help="download every object under a prefix"
    )
    down.add_argument("--allow-empty", action="store_true", help="an empty prefix is not an error")
    down.add_argument(
        "--make-dir",
        type=Path,
        metavar="DIR",
        help="also create DIR, writable by any user (a job's output directory)",
    )
    down.add_argument(
        "--plan",
        type=object_location("GET"),
        metavar="swift://CONTAINER/OBJECT",
        help="download what this stage-in plan (written by pman) lists, instead of a prefix; "
        "also the plan's temporary URL (GET), when the plan holds its objects' own",
    )
    down.add_argument("source", type=location("GET"), nargs="?", metavar="swift://CONTAINER/PREFIX")
    down.add_argument("dest", type=Path, metavar="DEST")

    run = argparse.ArgumentParser(add_help=False)
    run.add_argument(
        "--run-id",
        type=run_id,
        metavar="ID",
        help="the run this output belongs to, recorded in the manifest (pman gives each "
        "submission of a job one)",
    )
    run.add_argument(
        "--manifest-to",
        type=object_location("PUT"),
        metavar="swift://CONTAINER/OBJECT",
        help="write the manifest there, not under the destination prefix (or to this "
        "temporary URL, PUT)",
    )
    run.add_argument(
        "--large-object-service",
        metavar="URL",
        help="with temporary URLs: pman's service that writes the manifests of Static Large "
        "Objects (a temporary URL cannot), e.g. http://pman:5010/api/v1/_large-objects/; "
        "without it, large files go as single objects",
    )
    run.add_argument(
        "--skip-chris-links",
        action="store_true",
        help="never upload files whose name ends in .chrislink (they are reported)",
    )

    up = commands.add_parser("upload", parents=[common, run], help="upload a directory")
    up.add_argument("src", type=Path, metavar="SRC")
    up.add_argument("dest", type=location("PUT"), metavar="swift://CONTAINER/PREFIX")

    pub = commands.add_parser(
        "publish",
        parents=[common, run],
        help="wait for a container of this pod to end, then upload",
    )
    pub.add_argument("--wait-container", required=True, metavar="NAME")
    pub.add_argument("--publish-on", choices=("always", "success"), default="always")
    pub.add_argument("--kubeconfig", help="default: $KUBECONFIG, else in-cluster config")
    pub.add_argument("--pod", help="default: $POD_NAME")
    pub.add_argument("--namespace", help="default: $POD_NAMESPACE")
    pub.add_argument(
        "--wait-timeout",
        type=float,
        default=0,
        metavar="SECONDS",
        help="give up waiting after this long; 0 waits for ever (0)",
    )
    pub.add_argument("src", type=Path, metavar="SRC")
    pub.add_argument("dest", type=location("PUT"), metavar="swift://CONTAINER/PREFIX")
    return parser


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """Run one command; returns the exit code (documented in the module docstring)."""
    env = os.environ if env is None else env
    args = build_parser().parse_args(argv)
    _setup_logging(args.verbose)
    _install_signal_handlers()
    started = time.time()
    summary: dict[str, Any] = {"command": args.command}
    code = 0
    try:
        summary.update(_run(args, env))
        summary["status"] = "ok"
    except PublisherError as exc:
        code = exc.exit_code
        log.error("%s", exc)
        summary.update(status="error", error=str(exc))
    except Interrupted as exc:
        code = exc.exit_code
        log.error("%s", exc)
        summary.update(status="interrupted", error=str(exc))
    except Exception as exc:  # a bug: still one line (details with -v), never a secret dump
        code = 1
        log.error("unexpected error: %s: %s", type(exc).__name__, exc)
        log.debug("details", exc_info=True)
        summary.update(status="error", error=f"unexpected error: {type(exc).__name__}")
    summary.update(exit_code=code, seconds=round(time.time() - started, 3))
    if args.json:
        print(json.dumps(summary, sort_keys=True), flush=True)
    if code in (130, 143):
        # Worker threads may be mid-request; do not wait for them.
        sys.stderr.flush()
        os._exit(code)
    return code


def _run(args: argparse.Namespace, env: Mapping[str, str]) -> dict[str, Any]:
    store = _store(args, env)
    if args.command == "download":
        return _download(args, store)
    options = UploadOptions(
        threads=args.threads,
        segment_size=args.segment_size,
        segment_threads=args.segment_threads,
    )
    if args.command == "upload":
        return _upload(args, store, options)
    return _publish(args, store, options, env)


def _store(args: argparse.Namespace, env: Mapping[str, str]) -> SwiftStore:
    """The credentials' store, or the temporary URLs' when the locations are such URLs."""
    retry = RetryPolicy(attempts=args.retries)
    locations = [getattr(args, name, None) for name in ("source", "dest", "plan", "manifest_to")]
    given = [where for where in locations if isinstance(where, SwiftLocation)]
    signed = [where.signed for where in given if where.signed is not None]
    service = getattr(args, "large_object_service", None)
    if not signed:
        if args.temp_urls or service:
            raise UsageError("--temp-url and --large-object-service go with temporary URLs")
        credentials = resolve(args.credentials, env)
        log.debug("using %s", credentials.describe())
        return SwiftStore(credentials, retry=retry)
    if len(signed) != len(given):
        raise UsageError("give either swift:// locations or temporary URLs, not both")
    if args.credentials:
        raise UsageError("--credentials is not used with temporary URLs")
    for url in signed:
        if url.expired():
            raise TempUrlRefused(
                f"the temporary URL ({url.describe()}) has expired: ask for a new one (a "
                "job: submit it again)"
            )
    urls = [*signed, *args.temp_urls]
    for url in urls:
        log.debug("may %s", url.describe())
    return TempUrlStore(urls, large_objects=service, retry=retry)


def _download(args: argparse.Namespace, store: SwiftStore) -> dict[str, Any]:
    from publisher.download import DownloadOptions, download_plan, download_prefix, make_output_dir

    if (args.plan is None) == (args.source is None):
        raise UsageError("download needs either swift://CONTAINER/PREFIX or --plan, not both")
    if args.make_dir is not None:
        make_output_dir(args.make_dir)
    options = DownloadOptions(
        threads=args.threads,
        segment_threads=args.segment_threads,
        allow_empty=args.allow_empty,
    )
    source = args.source or args.plan
    download = download_plan if args.plan else download_prefix
    with Reporter(Progress("download"), interval=args.progress_interval) as progress:
        result = download(
            store,
            source.container,
            source.prefix,
            args.dest,
            options=options,
            progress=progress,
        )
    what = f"the plan {source}" if args.plan else str(source)
    log.info("downloaded %s into %s: %s", what, args.dest, progress.line())
    return result.summary() | {"retries": store.retries}


def _upload(args: argparse.Namespace, store: SwiftStore, options: UploadOptions) -> dict:
    from publisher.upload import upload_tree

    with Reporter(Progress("upload"), interval=args.progress_interval) as progress:
        result = upload_tree(
            store,
            args.src,
            args.dest.container,
            args.dest.prefix,
            options=options,
            progress=progress,
            run=args.run_id,
            manifest_at=_manifest_at(args),
            skip_chris_links=args.skip_chris_links,
        )
    log.info("uploaded %s to %s: %s", args.src, args.dest, progress.line())
    return result.summary() | {"retries": store.retries}


def _publish(
    args: argparse.Namespace, store: SwiftStore, options: UploadOptions, env: Mapping[str, str]
) -> dict[str, Any]:
    from publisher.kube import PodWatcher, api_client
    from publisher.publish import GracefulStop, publish

    pod = args.pod or env.get("POD_NAME")
    namespace = args.namespace or env.get("POD_NAMESPACE")
    if not pod or not namespace:
        raise UsageError(
            "publish needs the pod's name and namespace: set POD_NAME and POD_NAMESPACE"
        )
    deadline = time.monotonic() + args.wait_timeout if args.wait_timeout > 0 else None
    watcher = PodWatcher(
        api_client(args.kubeconfig or env.get("KUBECONFIG")), namespace, pod, deadline=deadline
    )
    stop = GracefulStop()
    stop.install()
    with Reporter(Progress("publish"), interval=args.progress_interval) as progress:
        result = publish(
            store,
            watcher,
            args.src,
            args.dest.container,
            args.dest.prefix,
            wait_container=args.wait_container,
            publish_on=args.publish_on,
            options=options,
            progress=progress,
            stop=stop,
            run=args.run_id,
            manifest_at=_manifest_at(args),
            skip_chris_links=args.skip_chris_links,
        )
    if result.upload is not None:
        log.info("published %s to %s: %s", args.src, args.dest, progress.line())
    return result.summary() | {"retries": store.retries}


def _manifest_at(args: argparse.Namespace) -> tuple[str, str] | None:
    location = args.manifest_to
    return None if location is None else (location.container, location.prefix)


def _setup_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("publisher: %(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(logging.DEBUG if verbose else logging.INFO)
    log.propagate = False
    for name in ("publisher.swift", "publisher.kube"):
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.INFO)
    # Library loggers stay quiet: some log request headers (tokens) at debug level.
    logging.getLogger().setLevel(logging.WARNING)


def _install_signal_handlers() -> None:
    def interrupt(signum: int, frame: object) -> None:
        raise Interrupted(signum)

    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, interrupt)
