"""What the ``pman`` client commands do: submit, status, logs, delete, push and pull,
against a pman server over HTTP (their options are in :mod:`pman.client.parser`).

Each takes ``--url`` (else ``PMAN_URL``, else ``http://127.0.0.1:5010/api/v1/``) and
``--token`` (else ``PMAN_API_TOKEN``), prints readable text, or pman's JSON with
``--json``, and reports a failure as one line on stderr, returning the exit code its
error carries (the table is in :data:`pman.client.parser.EXIT_CODES`).
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import os
import secrets
import shlex
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TextIO

from pman.archive import tar_stream
from pman.client.errors import ClientError, LocalFilesError, Unavailable, UsageError
from pman.client.http import DEFAULT_URL, PmanClient
from pman.client.localfiles import (
    MANIFEST,
    archive_type,
    check_against_manifest,
    directory_files,
    unpack_tar,
)

FINISHED = {"finishedSuccessfully", "finishedWithError", "undefined"}
PULL_FORMATS = ("tar", "tgz", "zip")
# While waiting, tolerate pman being away this many polls in a row (a restart, a redeploy).
WAIT_TOLERANCE = 5

Run = Callable[[argparse.Namespace, PmanClient], int]


def as_command(run: Run) -> Callable[[argparse.Namespace], int]:
    """``run`` as a command: the client built from the options or the environment (this is
    an entry point), each failure printed as one line and returned as its exit code."""

    def command(args: argparse.Namespace) -> int:
        try:
            url, token = _server(args, os.environ)
            client = PmanClient(url, token=token)
            try:
                return run(args, client)
            finally:
                client.close()
        except (ClientError, LocalFilesError, UsageError) as error:
            print(f"pman: {one_line(str(error))}", file=sys.stderr)
            return error.exit_code
        except KeyboardInterrupt:
            print("pman: interrupted", file=sys.stderr)
            return 130

    return command


def one_line(text: str) -> str:
    """``text`` with its control characters escaped: a file name may hold a newline, and a
    failure is reported as one line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _server(args: argparse.Namespace, environ: Mapping[str, str]) -> tuple[str, str | None]:
    url = args.url or environ.get("PMAN_URL") or DEFAULT_URL
    return url, args.token or environ.get("PMAN_API_TOKEN") or None


# -- submit ---------------------------------------------------------------------------------
def run_submit(args: argparse.Namespace, client: PmanClient) -> int:
    job = client.submit(job_request(args))
    if not args.wait:
        _print_job(args, job, headline="submitted")
        return 0
    _progress(args, job)
    return _await(args, client, job["jid"], seen=job)


def job_request(args: argparse.Namespace) -> dict[str, Any]:
    """The job request from --file, the flags over it, and the defaults under both."""
    body = _job_file(args.file) if args.file else {}
    flags = {
        "jid": args.jid,
        "image": args.image,
        "entrypoint": shlex.split(args.entrypoint) if args.entrypoint else None,
        "type": args.type,
        "cpu_limit": args.cpu_limit,
        "memory_limit": args.memory_limit,
        "gpu_limit": args.gpu_limit,
        "number_of_workers": args.number_of_workers,
        "auid": args.auid,
        "env": args.env,
        "args_path_flags": args.path_flags,
        "args": args.args or None,
        "input_dir": args.input_dir,
        "output_dir": args.output_dir,
    }
    body.update({name: value for name, value in flags.items() if value is not None})
    defaults = {
        "jid": f"job-{secrets.token_hex(4)}",
        "type": "fs",
        "cpu_limit": 1000,
        "memory_limit": 200,
        "gpu_limit": 0,
        "number_of_workers": 1,
        "auid": _user(),
        "args": [],
        "args_path_flags": [],
        "env": [],
    }
    for name, value in defaults.items():
        body.setdefault(name, value)
    missing = [f"--{name}" for name in ("image", "entrypoint") if not body.get(name)]
    if missing:
        raise UsageError(f"submit needs {' and '.join(missing)} (as flags or in --file)")
    return body


def _job_file(name: str) -> dict[str, Any]:
    try:
        text = sys.stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"cannot read the job file {name}: {error}") from None
    try:
        body = json.loads(text)
    except ValueError as error:
        raise UsageError(f"the job file {name} is not valid JSON: {error}") from None
    if not isinstance(body, dict):
        raise UsageError(f"the job file {name} must hold a JSON object")
    return body


def _user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "pman"


# -- status, logs, delete -------------------------------------------------------------------
def run_status(args: argparse.Namespace, client: PmanClient) -> int:
    if args.jid is None:
        if args.wait:
            raise UsageError("status --wait needs a JID")
        _print_jobs(args, client.jobs())
        return 0
    if args.wait:
        return _await(args, client, args.jid)
    _print_job(args, client.status(args.jid))
    return 0


def _await(
    args: argparse.Namespace, client: PmanClient, jid: str, *, seen: dict[str, Any] | None = None
) -> int:
    """Poll until the job finishes, printing each change (``seen`` was printed already);
    0 when it succeeded, 1 when it failed."""
    job: dict[str, Any] = seen or {}
    failures = 0
    while job.get("status") not in FINISHED:
        time.sleep(args.interval if job else 0)
        try:
            latest = client.status(jid)
        except Unavailable as error:
            failures += 1
            if failures >= WAIT_TOLERANCE:
                raise
            print(f"pman: {error}; trying again", file=sys.stderr)
            continue
        failures = 0
        if _summary(latest) != _summary(job):
            _progress(args, latest)
        job = latest
    if args.json:
        _print_json(job)
    return 0 if job["status"] == "finishedSuccessfully" else 1


def _summary(job: dict[str, Any]) -> tuple[str, ...]:
    return tuple(str(job.get(key, "")) for key in ("status", "phase", "message"))


def _progress(args: argparse.Namespace, job: dict[str, Any]) -> None:
    # Progress goes to stderr under --json, so that stdout holds JSON only.
    out: TextIO = sys.stderr if args.json else sys.stdout
    phase = f" ({job['phase']})" if job.get("phase") else ""
    message = f": {job['message']}" if job.get("message") else ""
    stamp = time.strftime("%H:%M:%S")
    print(f"{stamp} {job['jid']} {job['status']}{phase}{message}", file=out, flush=True)


def run_logs(args: argparse.Namespace, client: PmanClient) -> int:
    logs = client.status(args.jid)["logs"]
    if args.json:
        _print_json({"jid": args.jid, "logs": logs})
    else:
        sys.stdout.write(logs if not logs or logs.endswith("\n") else logs + "\n")
    return 0


def run_delete(args: argparse.Namespace, client: PmanClient) -> int:
    client.delete(args.jid)
    if args.json:
        _print_json({"jid": args.jid, "deleted": True})
    else:
        print(f"deleted {args.jid}")
    return 0


# -- push, pull -----------------------------------------------------------------------------
def run_push(args: argparse.Namespace, client: PmanClient) -> int:
    path = Path(args.path)
    if path.is_dir():
        result = client.push(
            args.jid, tar_stream(directory_files(path)), content_type="application/x-tar"
        )
    elif path.is_file():
        content_type = archive_type(path)
        with open(path, "rb") as handle:
            result = client.push(args.jid, handle, content_type=content_type)
    else:
        raise LocalFilesError(f"{path} is neither a directory nor a file")
    if args.json:
        _print_json(result)
    else:
        size = _size(result["bytes"])
        print(f"pushed {result['files']} files ({size}) to {result['input_dir']}")
    return 0


def run_pull(args: argparse.Namespace, client: PmanClient) -> int:
    if args.archive:
        return _save_archive(args, client)
    if not args.directory:
        raise UsageError("pull needs a DIRECTORY to unpack into, or --archive FILE")
    if args.format not in (None, "tar"):
        raise UsageError("--format applies to --archive; unpacking always downloads a tar")
    destination = Path(args.directory)
    with client.pull(args.jid, fmt="tar") as stream:
        unpacked = unpack_tar(stream, destination)
    check_against_manifest(destination, unpacked)
    files = len([name for name in unpacked.files if name != MANIFEST])
    if args.json:
        summary = {"jid": args.jid, "directory": str(destination), "files": files}
        _print_json({**summary, "bytes": unpacked.bytes})
    else:
        print(f"pulled {files} files ({_size(unpacked.bytes)}) into {destination}")
    return 0


def _save_archive(args: argparse.Namespace, client: PmanClient) -> int:
    fmt = args.format or _format_of(args.archive)
    if args.archive == "-":
        with client.pull(args.jid, fmt=fmt) as stream:
            _copy(stream, sys.stdout.buffer)
        return 0
    target = Path(args.archive)
    # Not a name made from the target's, which may already be as long as names can be.
    partial = target.with_name(f".pman-partial-{secrets.token_hex(8)}")
    try:
        with open(partial, "xb") as handle, client.pull(args.jid, fmt=fmt) as stream:
            size = _copy(stream, handle)
        partial.replace(target)
    except OSError as error:
        raise LocalFilesError(f"cannot write {target}: {error.strerror}") from None
    finally:
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)
    if args.json:
        _print_json({"jid": args.jid, "archive": str(target), "format": fmt, "bytes": size})
    else:
        print(f"saved the output of {args.jid} ({_size(size)}) as {target}")
    return 0


def _format_of(name: str) -> str:
    if name.endswith(".zip"):
        return "zip"
    if name.endswith((".tar.gz", ".tgz")):
        return "tgz"
    return "tar"


def _copy(stream: Any, out: Any) -> int:
    size = 0
    while chunk := stream.read(1 << 20):
        out.write(chunk)
        size += len(chunk)
    out.flush()
    return size


# -- output ---------------------------------------------------------------------------------
def _print_job(args: argparse.Namespace, job: dict[str, Any], *, headline: str = "") -> None:
    if args.json:
        _print_json(job)
        return
    phase = f" ({job['phase']})" if job.get("phase") else ""
    print(f"{headline + ' ' if headline else ''}{job['jid']}: {job['status']}{phase}")
    for key in ("message", "reason", "timestamp", "image", "cmd"):
        if job.get(key):
            print(f"  {key + ':':<11}{job[key]}")


def _print_jobs(args: argparse.Namespace, jobs: list[dict[str, Any]]) -> None:
    if args.json:
        _print_json({"jobs": jobs})
        return
    if not jobs:
        print("no jobs")
        return
    width = max(len(job["jid"]) for job in jobs)
    for job in jobs:
        print(f"{job['jid']:<{width}}  {job['status']:<20}  {job.get('phase', ''):<10}  "
              f"{job.get('message', '')}".rstrip())  # fmt: skip


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2))


def _size(count: int) -> str:
    if count < 1024:
        return f"{count} bytes"
    size = count / 1024
    for unit in ("KiB", "MiB", "GiB"):
        if size < 1024:
            return f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"
