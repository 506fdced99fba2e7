"""The ``pman`` client commands' arguments: submit, status, logs, delete, push and pull.

What each command does is in :mod:`pman.client.commands`; this module only declares the
options, with the exit codes in every command's help.
"""

from __future__ import annotations

import argparse
from typing import Any

from pman.client.commands import (
    PULL_FORMATS,
    as_command,
    run_delete,
    run_logs,
    run_pull,
    run_push,
    run_status,
    run_submit,
)
from pman.client.http import DEFAULT_URL
from pman.client.localfiles import MANIFEST

EXIT_CODES = """\
exit codes:
  0    done (status --wait, submit --wait: the job finished successfully)
  1    the awaited job finished with an error (finishedWithError or undefined)
  2    bad usage: unknown option, bad value, unreadable or invalid job file
  3    pman refused the request (4xx: invalid field, no such job, missing token,
       output not published yet, upload too large...)
  4    pman could not be reached, did not answer in time, or failed (5xx)
  5    a local file or directory could not be used (a link in a directory to push,
       an unwritable destination, an unsafe archive, a checksum mismatch)
  130  interrupted
"""


def add_client_commands(commands: Any) -> None:
    """Register the client subcommands on the ``pman`` parser's subparsers."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", help=f"pman's API URL (default $PMAN_URL, else {DEFAULT_URL})")
    common.add_argument("--token", help="bearer token (default $PMAN_API_TOKEN)")
    common.add_argument("--json", action="store_true", help="print pman's answer as JSON")
    options = {
        "parents": [common],
        "allow_abbrev": False,
        "epilog": EXIT_CODES,
        "formatter_class": _Formatter,
    }
    _add_submit(commands, options)
    _add_status(commands, options)
    logs = commands.add_parser("logs", help="print a job's logs", **options)
    logs.add_argument("jid")
    logs.set_defaults(run=as_command(run_logs))
    delete = commands.add_parser("delete", help="delete a job (stops it)", **options)
    delete.add_argument("jid")
    delete.set_defaults(run=as_command(run_delete))
    _add_push(commands, options)
    _add_pull(commands, options)


class _Formatter(argparse.HelpFormatter):
    """Descriptions wrapped as usual; the exit code table kept as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text == EXIT_CODES:
            return text
        return super()._fill_text(text, width, indent)


def _add_submit(commands: Any, options: dict[str, Any]) -> None:
    submit = commands.add_parser(
        "submit",
        help="submit a job",
        description="Submit a job. Fields come from --file (pman's JSON job request), then "
        "from the flags; arguments of the processor go after '--'. Defaults: a generated "
        "--jid, --type fs, --cpu-limit 1000, --memory-limit 200, --gpu-limit 0, "
        "--number-of-workers 1, --auid the local user name.",
        **options,
    )
    submit.add_argument("--file", metavar="JSON", help="a job request as JSON ('-': stdin)")
    submit.add_argument("--jid", help="job id (a DNS-1123 label)")
    submit.add_argument("--image", help="the processor's image")
    submit.add_argument("--entrypoint", help="the processor's command, e.g. 'python3 app.py'")
    submit.add_argument("--type", choices=("ds", "fs", "ts"))
    for flag, unit in [("cpu-limit", "millicores"), ("memory-limit", "MiB")]:
        submit.add_argument(f"--{flag}", type=_whole_number, metavar=unit.upper())
    submit.add_argument("--gpu-limit", type=_whole_number, metavar="N")
    submit.add_argument("--number-of-workers", type=_whole_number, metavar="N")
    submit.add_argument("--auid", help="owner's user name")
    submit.add_argument("--env", action="append", type=_env_item, metavar="KEY=VALUE")
    submit.add_argument(
        "--args-path-flag",
        action="append",
        metavar="FLAG",
        dest="path_flags",
        help="an argument flag whose value becomes /share/incoming (write --args-path-flag=--dir)",
    )
    submit.add_argument("--input-dir", metavar="CONTAINER/PREFIX")
    submit.add_argument("--output-dir", metavar="CONTAINER/PREFIX")
    submit.add_argument("--wait", action="store_true", help="then follow it as status --wait")
    submit.add_argument("--interval", type=float, default=2.0, help=argparse.SUPPRESS)
    submit.add_argument("args", nargs="*", help="the processor's arguments (after '--')")
    submit.set_defaults(run=as_command(run_submit))


def _add_status(commands: Any, options: dict[str, Any]) -> None:
    status = commands.add_parser(
        "status",
        help="show a job's status, or every job's",
        description="Show a job's status; without JID, list every job.",
        **options,
    )
    status.add_argument("jid", nargs="?")
    status.add_argument(
        "--wait", action="store_true", help="follow the job until it finishes, showing progress"
    )
    status.add_argument(
        "--interval", type=float, default=2.0, help="seconds between polls (default 2)"
    )
    status.set_defaults(run=as_command(run_status))


def _add_push(commands: Any, options: dict[str, Any]) -> None:
    push = commands.add_parser(
        "push",
        help="upload a job's input",
        description="Upload a job's input into Swift through pman: a directory (sent as a "
        "tar stream; links and special files are refused) or a tar (plain or compressed) "
        "or zip file. Push before submitting: a job reads its input as soon as it starts.",
        **options,
    )
    push.add_argument("jid")
    push.add_argument("path", help="a directory, or a .tar/.tar.gz/.zip file")
    push.set_defaults(run=as_command(run_push))


def _add_pull(commands: Any, options: dict[str, Any]) -> None:
    pull = commands.add_parser(
        "pull",
        help="download a job's published output",
        description="Download a job's published output (with the publisher's manifest, "
        f"{MANIFEST}) and unpack it into DIRECTORY, every name checked, each file checked "
        "against the manifest's MD5; or save the archive itself with --archive.",
        **options,
    )
    pull.add_argument("jid")
    pull.add_argument("directory", nargs="?", help="where to unpack (created if needed)")
    pull.add_argument("--archive", metavar="FILE", help="save the archive instead ('-': stdout)")
    pull.add_argument(
        "--format", choices=PULL_FORMATS, help="archive format (default from FILE's name, or tar)"
    )
    pull.set_defaults(run=as_command(run_pull))


def _whole_number(raw: str) -> int:
    if not raw.isdigit():
        raise argparse.ArgumentTypeError(f"{raw!r} is not a whole number")
    return int(raw)


def _env_item(raw: str) -> str:
    if "=" not in raw or raw.startswith("="):
        raise argparse.ArgumentTypeError(f"{raw!r} is not KEY=VALUE")
    return raw
