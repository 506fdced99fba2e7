"""``localcluster up`` and ``down``: Swift, the local cluster and pman on one machine, wired.

``up`` starts, in one process tree, a Swift all-in-one, the local cluster with TLS (so
pods use the in-cluster configuration unchanged) and ``pman serve``; stores the Swift
credentials in the cluster as the Secret pman's pods mount (``swift-credentials``, key
``swift-credentials.cfg``); and writes an env file (``<dir>/env``: ``KUBECONFIG``,
``ST_AUTH``/``ST_USER``/``ST_KEY``, ``SWIFT_CREDENTIALS_FILE``, ``PMAN_URL``, ...) that a
shell loads with ``. <dir>/env``, so that ``pman``, ``publisher``, ``curl`` and
``kubectl`` need no wiring by hand. It serves until SIGINT or SIGTERM (``localcluster
down`` sends the latter), then stops everything it started. ``Stack`` does the same from
Python, for ``make demo`` and the tests.

``--storage host`` or ``--storage kubernetes_pvc`` runs pman in that storage mode over a
storeBase directory (``--storebase``, default ``<dir>/storebase``), as a pfcon-style client
expects: jobs read ``<storeBase>/<input_dir>`` and write ``<storeBase>/<output_dir>``. With
``kubernetes_pvc`` the claim (``storebase``) is that directory: the local cluster's claim
directory is made a link to it. The env file then also names it, as ``STOREBASE_MOUNT``
(pfcon's name for where it sees its storeBase).

Jobs run as a non-root UID (the namespace's arbitrary one, in group 0, unless
``CONTAINER_USER`` says), not as whoever runs ``up``. A claim's tree is given to the pods'
``fsGroup`` by the local cluster, as by a kubelet; a host directory no kubelet changes, so
``up`` prepares ``--storebase`` as an operator must (:func:`prepare_host_storebase`): group 0
(or ``CONTAINER_USER``'s fixed GID), setgid, group-writable. A client then makes the
directories of its jobs group-writable (``umask 002``), as the printed commands do.
"""

from __future__ import annotations

import argparse
import base64
import logging
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

import kubernetes

from devstack.processes import HOST, die_with_parent, free_port, terminate, wait_for_http
from devstack.swiftaio import SwiftAIO, SwiftStartError
from localcluster.cluster import LocalCluster

log = logging.getLogger("localcluster.up")

DEFAULT_DIR = ".state"
PMAN_PORT = 5010
NAMESPACE = "default"
SECRET_NAME = "swift-credentials"
SECRET_KEY = "swift-credentials.cfg"
STORAGE_TYPES = ("swift", "host", "kubernetes_pvc")
CLAIM = "storebase"
# The service account pman's pods name (its default PUBLISHER_SERVICE_ACCOUNT).
PUBLISHER_ACCOUNT = "pman-publisher"
ENV_FILE = "env"
PID_FILE = "up.pid"
# pman as a ChRIS compute resource: pfcon's development user and CUBE's default container.
PFCON_USER = "pfcon"
PFCON_PASSWORD = "pfcon1234"
CUBE_CONTAINER = "users"
PFCON_BASE = "/pfcon/api/v1/"
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


class StackError(RuntimeError):
    """A part of the stack did not come up, or the stack's directory is in use."""


class PmanProcess:
    """``pman serve`` as a child process on 127.0.0.1, its output in a log file."""

    def __init__(self, env: Mapping[str, str], log_path: Path, *, port: int = 0) -> None:
        self.env = dict(env)
        self.log_path = log_path
        self.port = port or free_port()
        self.popen: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self, *, timeout: float = 30.0) -> PmanProcess:
        """Start and wait until ``/readyz`` answers (pman reached the cluster)."""
        argv = [sys.executable, "-m", "pman.cli", "serve", "--host", HOST]
        argv += ["--port", str(self.port)]
        with open(self.log_path, "ab") as output:
            self.popen = subprocess.Popen(
                argv,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent,
            )
        try:
            wait_for_http(
                f"{self.url}/readyz", timeout=timeout, process=self.popen, error=StackError
            )
        except StackError as exc:
            self.stop()
            raise StackError(f"pman: {exc} (log: {self.log_path})") from exc
        return self

    def stop(self, *, timeout: float = 10.0) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        terminate(self.popen, timeout=timeout)

    def kill(self) -> None:
        """End it at once, as a crash would."""
        if self.popen is not None and self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait()


class Stack:
    """Swift, the local cluster (TLS) and, unless ``pman_port`` is None, pman.

    Everything lives under ``directory``: ``swift/`` (configuration, data, logs),
    ``cluster/`` (pod volumes and logs, cleared at each start), ``kubeconfig``,
    ``swift-credentials.cfg``, ``pman.log`` and the env file ``env``.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        pman_port: int | None = 0,
        namespace: str = NAMESPACE,
        secret_name: str = SECRET_NAME,
        storage: str = "swift",
        storebase: str | os.PathLike[str] | None = None,
    ) -> None:
        self.directory = Path(directory).resolve()
        self.pman_port = pman_port
        self.namespace = namespace
        self.secret_name = secret_name
        if storage not in STORAGE_TYPES:
            raise StackError(f"unknown storage {storage!r}: one of {', '.join(STORAGE_TYPES)}")
        self.storage = storage
        self.storebase = Path(storebase or self.directory / "storebase").resolve()
        self.storebase_said: list[str] = []  # what was done to the storeBase, for people
        self.swift: SwiftAIO | None = None
        self.cluster: LocalCluster | None = None
        self.pman: PmanProcess | None = None
        # The pfcon API's tokens are signed with it; one pman, so one made up per start.
        self.pfcon_secret_key = secrets.token_urlsafe(32)

    @property
    def env_file(self) -> Path:
        return self.directory / ENV_FILE

    @property
    def credentials_file(self) -> Path:
        return self.directory / SECRET_KEY

    def start(self) -> Stack:
        self.directory.mkdir(parents=True, exist_ok=True)
        try:
            self._start_swift()
            self._start_cluster()
            self._store_credentials()
            self._prepare_storebase()
            if self.pman_port is not None:
                self.pman = PmanProcess(
                    {**os.environ, **self.pman_settings(), **self.environment()},
                    self.directory / "pman.log",
                    port=self.pman_port,
                ).start()
            write_env_file(self.env_file, self.environment())
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop pman, the cluster (and every pod process), then Swift; idempotent."""
        for part in (self.pman, self.cluster, self.swift):
            if part is not None:
                part.stop()
        self.env_file.unlink(missing_ok=True)

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _start_swift(self) -> None:
        self.swift = SwiftAIO(self.directory / "swift")
        try:
            self.swift.start()
        except SwiftStartError as exc:
            raise StackError(f"Swift: {exc}") from exc
        self.swift.write_credentials(self.credentials_file)
        # CUBE's container, where the pfcon API's jobs read and write.
        self.swift.connection().put_container(CUBE_CONTAINER)

    def _start_cluster(self) -> None:
        state = self.directory / "cluster"
        # Objects live in the cluster's memory only: volumes of an earlier run are garbage.
        shutil.rmtree(state, ignore_errors=True)
        # Containers see none of the stack's directory: the Swift credentials and data, the
        # env file, the kubeconfig, the cluster's state.
        self.cluster = LocalCluster(
            state, tls=True, kubeconfig=self.directory / "kubeconfig", hide=[self.directory]
        )
        try:
            self.cluster.start()
        except (OSError, RuntimeError) as exc:
            raise StackError(f"local cluster: {exc}") from exc

    def _store_credentials(self) -> None:
        assert self.cluster is not None
        data = base64.b64encode(self.credentials_file.read_bytes()).decode()
        secret = {"metadata": {"name": self.secret_name}, "data": {SECRET_KEY: data}}
        account = {"metadata": {"name": PUBLISHER_ACCOUNT}}
        config = str(self.cluster.kubeconfig_path)
        with kubernetes.config.new_client_from_config(config_file=config) as api:
            core = kubernetes.client.CoreV1Api(api)
            try:
                core.create_namespaced_secret(self.namespace, secret)
                core.create_namespaced_service_account(self.namespace, account)
            except kubernetes.client.ApiException as exc:
                raise StackError(f"storing the Swift credentials: {exc.reason}") from exc

    def _prepare_storebase(self) -> None:
        """The storeBase directory, and in the claim mode the claim standing for it."""
        if self.storage == "swift":
            return
        assert self.cluster is not None
        self.storebase.mkdir(parents=True, exist_ok=True)
        if self.storage == "host":
            self.storebase_said = prepare_host_storebase(
                self.storebase, job_group(os.environ.get("CONTAINER_USER", ""))
            )
        if self.storage == "kubernetes_pvc":
            # A claim of the local cluster is a directory of its state, or where a link
            # there points (localcluster/README.md).
            claim = self.cluster.state_dir / "volumes" / self.namespace / CLAIM
            claim.parent.mkdir(parents=True, exist_ok=True)
            claim.symlink_to(self.storebase)
            assert self.cluster.claim_directory(self.namespace, CLAIM) == self.storebase

    def pman_settings(self) -> dict[str, str]:
        """What pman is told about this stack (its settings, see README.rst), the pfcon API
        on with pfcon's development user over CUBE's default container."""
        settings = {
            "JOB_NAMESPACE": self.namespace,
            "SWIFT_SECRET_NAME": self.secret_name,
            "PFCON_USER": PFCON_USER,
            "PFCON_PASSWORD": PFCON_PASSWORD,
            "PFCON_SECRET_KEY": self.pfcon_secret_key,
            "SWIFT_CONTAINER_NAME": CUBE_CONTAINER,
        }
        if self.storage == "host":
            settings.update(STORAGE_TYPE="host", STOREBASE=str(self.storebase))
        elif self.storage == "kubernetes_pvc":
            settings.update(STORAGE_TYPE="kubernetes_pvc", VOLUME_NAME=CLAIM)
        return settings

    def environment(self) -> dict[str, str]:
        """The variables of the env file."""
        assert self.swift is not None
        assert self.cluster is not None
        env = {
            "KUBECONFIG": str(self.cluster.kubeconfig_path),
            **self.swift.environment(),
            "SWIFT_CREDENTIALS_FILE": str(self.credentials_file),
            **self.pman_settings(),
        }
        if self.storage != "swift":
            env["STOREBASE_MOUNT"] = str(self.storebase)
        if self.pman is not None:
            # The API's base URL, as pman's client commands and pfcon take it.
            env["PMAN_URL"] = f"{self.pman.url}/api/v1/"
            # The compute resource's URL, as an operator registers it in CUBE.
            env["PFCON_URL"] = f"{self.pman.url}{PFCON_BASE}"
        return env


def job_group(container_user: str) -> int | None:
    """The group the jobs share: ``CONTAINER_USER``'s GID when it is one number, 0 (the group
    of every arbitrary UID, as OpenShift assigns them) when it names none, None for a range
    (each job gets its own)."""
    gid = container_user.partition(":")[2].strip()
    if not gid:
        return 0
    return int(gid) if gid.isdigit() else None


def prepare_host_storebase(path: Path, group: int | None) -> list[str]:
    """Make a ``hostPath`` storeBase usable by the jobs' UIDs, as its operator must (no
    kubelet changes a hostPath's owner): ``group``, setgid (what is made in it keeps the
    group), group read, write and search; world-writable when the jobs share no group. Says
    what it did, and the command for what was already in it; nothing when this user is not
    root, since containers then run as it."""
    if os.geteuid() != 0:
        return []
    if group is None:
        path.chmod(path.stat().st_mode & 0o7777 | 0o777)
        return ["made world-writable: CONTAINER_USER's GID is a range, no group is every job's"]
    os.chown(path, -1, group)
    path.chmod(path.stat().st_mode & 0o7777 | 0o2770)
    said = [f"made group {group}, setgid and group-writable, for the jobs' UIDs"]
    if any(path.iterdir()):
        where = shlex.quote(str(path))
        said += [
            "what it already held keeps its modes; for the jobs to write there too, run:",
            f"chgrp -R {group} {where} && chmod -R g+rwX {where} &&",
            f"    find {where} -type d -exec chmod g+s {{}} +",
        ]
    return said


def write_env_file(path: Path, env: Mapping[str, str]) -> None:
    """``export NAME=value`` lines a POSIX shell can source; replaced atomically.

    It also puts the directory of this interpreter first on ``PATH``, so that the
    ``pman``, ``publisher`` and ``localcluster`` commands of its virtualenv are found.
    """
    lines = [f"# pman's local stack (localcluster up). Load it with:  . {path}"]
    lines += [f"export {name}={shlex.quote(value)}" for name, value in env.items()]
    lines.append(f'export PATH={shlex.quote(str(Path(sys.executable).parent))}:"$PATH"')
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text("\n".join(lines) + "\n")
    temporary.chmod(0o600)  # holds the Swift key
    os.replace(temporary, path)


def read_env_file(path: str | os.PathLike[str]) -> dict[str, str]:
    """The variables of an env file written by ``write_env_file``."""
    env = {}
    for line in Path(path).read_text().splitlines():
        words = shlex.split(line, comments=True)
        if len(words) == 2 and words[0] == "export" and "=" in words[1]:
            name, _, value = words[1].partition("=")
            if name != "PATH":  # it extends the shell's own PATH
                env[name] = value
    return env


def _job_json(jid: str, program: Path) -> str:
    return (
        f'{{"jid": "{jid}", "image": "python:3.11-slim", '
        f'"entrypoint": ["python3", "{program}"], "args": ["--top", "5"], '
        '"auid": "me", "number_of_workers": 1, "cpu_limit": 1000, "memory_limit": 200, '
        f'"gpu_limit": 0, "type": "ds", "input_dir": "key-{jid}/incoming", '
        f'"output_dir": "key-{jid}/outgoing"}}'
    )


def commands_to_try(env_file: Path, storage: str = "swift") -> str:
    """What to type in another shell to run the sample job by hand, with pman's client
    commands, then with curl and the publisher as pfcon would; in a volume storage mode,
    with curl and the storeBase, as pfcon's zipfile mode does."""
    program = EXAMPLES / "wordcount" / "wordcount.py"
    sample = EXAMPLES / "wordcount" / "input"
    if storage != "swift":
        return _indent(_storebase_commands(env_file, program, sample))
    jid, other = "try-1", "try-2"
    job = _job_json(other, program)
    lines = [
        f". {env_file}",
        "",
        "# with pman's client commands:",
        f"pman push {jid} {sample}",
        f"pman submit --jid {jid} --type ds --image python:3.11-slim \\",
        f"    --entrypoint 'python3 {program}' --wait -- --top 5",
        f"pman logs {jid}",
        f"pman pull {jid} ./{jid}-output",
        f"pman delete {jid}",
        "",
        "# with curl and the publisher:",
        f"publisher upload {sample} swift://key-{other}/incoming",
        'curl -s -X POST "$PMAN_URL" -H "Content-Type: application/json" \\',
        f"    -d {shlex.quote(job)}",
        f'curl -s "${{PMAN_URL}}{other}/"    # until its status is finishedSuccessfully',
        f"publisher download swift://key-{other}/outgoing ./{other}-output",
        f'curl -s -X DELETE "${{PMAN_URL}}{other}/"',
        "",
        "# as a ChRIS compute resource, with the requests CUBE sends:",
        *cube_commands(program, sample),
        "",
        "# KUBECONFIG is set too: kubectl get jobs,pods works if you have kubectl",
    ]
    return _indent(lines)


def _storebase_commands(env_file: Path, program: Path, sample: Path) -> list[str]:
    jid = "try-1"
    return [
        f". {env_file}",
        "",
        "# as pfcon does: the input into the storeBase, submit, then read the output there",
        "# (group-writable: the job runs as another UID, in the storeBase's group)",
        f'(umask 002 && mkdir -p "$STOREBASE_MOUNT/key-{jid}/incoming" \\',
        f'    "$STOREBASE_MOUNT/key-{jid}/outgoing" && \\',
        f'    cp -r {sample}/. "$STOREBASE_MOUNT/key-{jid}/incoming/")',
        'curl -s -X POST "$PMAN_URL" -H "Content-Type: application/json" \\',
        f"    -d {shlex.quote(_job_json(jid, program))}",
        f"pman status {jid} --wait",
        f"pman logs {jid}",
        f'ls "$STOREBASE_MOUNT/key-{jid}/outgoing"',
        f"pman delete {jid}",
        "",
        "# (pman push and pull answer 409 in this storage mode: the storeBase is the client's)",
    ]


def _indent(lines: list[str]) -> str:
    return "\n".join(f"    {line}" if line else "" for line in lines)


def cube_commands(program: Path, sample: Path) -> list[str]:
    """A CUBE-shaped run through the pfcon API with curl: log in, read the server info,
    POST a plugin instance's form, poll it, read its file list, fetch it, delete it."""
    jid, data = "chris-jid-1", f"home/{PFCON_USER}/uploads/try"
    output = f"home/{PFCON_USER}/feeds/feed_1/pl-wordcount_1/data"
    login = f'{{"pfcon_user": "{PFCON_USER}", "pfcon_password": "{PFCON_PASSWORD}"}}'
    auth = '-H "Authorization: Bearer $TOKEN"'
    fields = [
        "jid=" + jid,
        "entrypoint=python3",
        f"entrypoint={program}",
        "args=--top",
        "args=5",
        f"auid={PFCON_USER}",
        "number_of_workers=1",
        "cpu_limit=1000",
        "memory_limit=200",
        "gpu_limit=0",
        "image=python:3.11-slim",
        "type=ds",
        f"env=CHRIS_JID={jid}",
        f"input_dirs={data}",
        f"output_dir={output}",
    ]
    form = " ".join(f"-d {shlex.quote(field)}" for field in fields)
    return [
        f"publisher upload {sample} swift://{CUBE_CONTAINER}/{data}",
        f'TOKEN=$(curl -s -X POST "${{PFCON_URL}}auth-token/" -H "Content-Type: '
        f'application/json" -d {shlex.quote(login)} | python3 -c '
        "'import json, sys; print(json.load(sys.stdin)[\"token\"])')",
        f'curl -s {auth} "${{PFCON_URL}}pluginjobs/"    # the server info CUBE reads',
        f'curl -s {auth} "${{PFCON_URL}}pluginjobs/" \\',
        f"    {form}",
        f'curl -s {auth} "${{PFCON_URL}}pluginjobs/{jid}/"    # until finishedSuccessfully',
        f'curl -s {auth} "${{PFCON_URL}}pluginjobs/{jid}/file/?job_output_path={output}"',
        f"publisher download swift://{CUBE_CONTAINER}/{output} ./{jid}-output",
        f'curl -s -X DELETE {auth} "${{PFCON_URL}}pluginjobs/{jid}/"',
    ]


# -- the commands ---------------------------------------------------------------------


def _dir_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dir",
        type=Path,
        default=Path(DEFAULT_DIR),
        help=f"where the stack keeps its files and env file (default: ./{DEFAULT_DIR})",
    )


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a port number (0 for any)")
    return int(text)


def up_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="localcluster up",
        description="Run Swift, the local cluster (TLS) and pman together until interrupted, "
        "and write an env file the other commands read.",
    )
    _dir_argument(parser)
    parser.add_argument(
        "--pman-port", type=_port, default=PMAN_PORT, help="pman's port (5010; 0 for any)"
    )
    parser.add_argument("--no-pman", action="store_true", help="do not start pman")
    parser.add_argument(
        "--storage",
        choices=STORAGE_TYPES,
        default="swift",
        help="pman's STORAGE_TYPE (swift; host or kubernetes_pvc: jobs mount --storebase)",
    )
    parser.add_argument(
        "--storebase",
        type=Path,
        help="the storeBase directory of the host and kubernetes_pvc storage "
        "(default: <dir>/storebase)",
    )
    return parser


def down_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="localcluster down", description="Stop what `localcluster up` started."
    )
    _dir_argument(parser)
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait (30)")
    return parser


def running_pid(directory: Path) -> int | None:
    """The pid of the ``localcluster up`` serving ``directory``, if one is running."""
    try:
        pid = int((directory / PID_FILE).read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    # A pid file left by a killed `up` may name an unrelated process by now.
    words = cmdline.split(b"\0")
    return pid if any(b"localcluster" in w for w in words) and b"up" in words else None


def up(argv: Sequence[str]) -> int:
    args = up_parser().parse_args(list(argv))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("localcluster.http").setLevel(logging.WARNING)
    directory = args.dir.resolve()
    if (pid := running_pid(directory)) is not None:
        print(
            f"localcluster up: already running for {directory} (pid {pid}); "
            f"stop it with: localcluster down --dir {args.dir}",
            file=sys.stderr,
        )
        return 1
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    if args.storebase is not None and args.storage == "swift":
        print(
            "localcluster up: --storebase needs --storage host or kubernetes_pvc", file=sys.stderr
        )
        return 2
    stack = Stack(
        directory,
        pman_port=None if args.no_pman else args.pman_port,
        storage=args.storage,
        storebase=args.storebase,
    )
    try:
        stack.start()
    except (StackError, OSError) as exc:
        print(f"localcluster up: cannot start: {exc}", file=sys.stderr)
        return 1
    pid_file = directory / PID_FILE
    pid_file.write_text(f"{os.getpid()}\n")
    try:
        _announce(stack, args.dir)
        stop.wait()
        log.info("stopping")
    finally:
        stack.stop()
        pid_file.unlink(missing_ok=True)
    return 0


def _announce(stack: Stack, shown_dir: Path) -> None:
    assert stack.swift is not None
    assert stack.cluster is not None
    lines = [
        "",
        f"Swift:          {stack.swift.proxy_url} (user test:tester, key testing)",
        f"Kubernetes API: {stack.cluster.url} (kubeconfig {stack.cluster.kubeconfig_path})",
    ]
    env_file = shown_dir / ENV_FILE
    if stack.pman is not None:
        lines.append(f"pman:           {stack.pman.url} (log {stack.pman.log_path})")
        lines.append(
            f"pfcon API:      {stack.pman.url}{PFCON_BASE} (user {PFCON_USER}, password "
            f"{PFCON_PASSWORD}; CUBE's container: {CUBE_CONTAINER})"
        )
    if stack.storage != "swift":
        lines.append(f"storeBase:      {stack.storebase} (STORAGE_TYPE={stack.storage})")
        lines += [" " * 16 + line for line in stack.storebase_said]
    else:
        lines.append(f"pman:           not started; run: . {env_file}; pman serve")
    lines += [
        f"env file:       {env_file}",
        *isolation_lines(stack.cluster),
        "",
        "Try it from another shell:",
        commands_to_try(env_file, stack.storage),
        "",
        f"Stop with Ctrl-C here, or: localcluster down --dir {shown_dir}",
        "",
    ]
    print("\n".join(lines), flush=True)


def isolation_lines(cluster: LocalCluster) -> list[str]:
    """What ``up`` says of the isolation this machine gives the job containers."""
    assert cluster.isolation is not None
    text = f"Isolation:      {cluster.isolation.summary(NAMESPACE)}."
    return textwrap.wrap(text, width=96, subsequent_indent=" " * 16, break_on_hyphens=False)


def down(argv: Sequence[str]) -> int:
    args = down_parser().parse_args(list(argv))
    pid = running_pid(args.dir.resolve())
    if pid is None:
        print(f"localcluster down: nothing is running for {args.dir}", file=sys.stderr)
        return 1
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + args.timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _alive(pid):
        print(f"localcluster down: pid {pid} is still running", file=sys.stderr)
        return 1
    print(f"localcluster down: stopped (pid {pid})")
    return 0


def _alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie waiting for its parent does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"
