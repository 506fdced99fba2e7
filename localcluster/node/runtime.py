"""Container processes: their environment, and starting, signalling and waiting for them.

Each container is started through ``_wrapper.py`` in a new session (its own process
group) with stdout and stderr appended to its log file. The environment is a minimal one
like a real container's (PATH with the interpreter running the local cluster first,
HOSTNAME, HOME, the ``KUBERNETES_SERVICE_*`` variables when serving TLS) plus the
container's ``envFrom`` and ``env``, with ``$(VAR)`` references expanded as Kubernetes does.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import pwd
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from decimal import ROUND_CEILING, Decimal
from pathlib import Path
from typing import Any

from localcluster.apiserver.meta import parse_quantity
from localcluster.apiserver.registry import Store
from localcluster.node.mounts import WRAPPER
from localcluster.node.volumes import downward_value

Obj = dict[str, Any]
JANITOR = Path(__file__).with_name("_janitor.py")
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# What the runtime or the image sets, not the pod spec: Kubernetes expands no reference to
# these unless the container declares them itself.
RUNTIME_VARIABLES = ("PATH", "HOSTNAME", "HOME")


class ConfigError(Exception):
    """The container cannot be configured yet (``CreateContainerConfigError``)."""


class StartFailed(Exception):
    """The process could not be started (``StartError``)."""


def expand(text: str, env: Mapping[str, str]) -> str:
    """``text`` with ``$(VAR)`` references replaced from ``env``, as Kubernetes expands
    commands, args and env values: ``$$`` is a literal ``$``; a reference's name is all up
    to the next ``)``, and a name ``env`` lacks leaves the reference as it is; any other
    ``$`` stays, with the character after it."""
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char != "$" or i + 1 == len(text):
            out.append(char)
            i += 1
        elif text[i + 1] == "$":
            out.append("$")
            i += 2
        elif text[i + 1] == "(" and (end := text.find(")", i + 2)) != -1:
            name = text[i + 2 : end]
            out.append(env.get(name, f"$({name})"))
            i = end + 1
        else:
            out.append(text[i : i + 2])
            i += 2
    return "".join(out)


def home_of(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_dir
    except KeyError:
        return "/"


def base_env(pod: Obj, *, home: str, service: tuple[str, int] | None) -> dict[str, str]:
    env = {
        "PATH": f"{os.path.dirname(sys.executable)}:{SYSTEM_PATH}",
        "HOSTNAME": pod["metadata"]["name"],
        "HOME": home,
    }
    if service is not None:
        host, port = service
        env.update(
            KUBERNETES_SERVICE_HOST=host,
            KUBERNETES_SERVICE_PORT=str(port),
            KUBERNETES_SERVICE_PORT_HTTPS=str(port),
            KUBERNETES_PORT=f"tcp://{host}:{port}",
        )
    return env


def _lookup(store: Store, namespace: str, ref: Obj, resource: str) -> str | None:
    kind = "secret" if resource == "secrets" else "configmap"
    name, key = ref.get("name", ""), ref.get("key", "")
    entry = store.get(resource, namespace, name)
    if entry is None:
        if ref.get("optional"):
            return None
        raise ConfigError(f'{kind} "{name}" not found')
    data = entry.obj.get("data") or {}
    if key not in data:
        if ref.get("optional"):
            return None
        raise ConfigError(f"couldn't find key {key} in {kind.capitalize()} {namespace}/{name}")
    return base64.b64decode(data[key]).decode() if resource == "secrets" else data[key]


def _resource_value(container: Obj, ref: Obj) -> str:
    resource = ref.get("resource", "")
    part, _, name = resource.partition(".")
    quantities = (container.get("resources") or {}).get(part) or {}
    value = parse_quantity(quantities.get(name, 0))
    divisor = parse_quantity(ref.get("divisor") or 1)
    return str(int((value / divisor).to_integral_value(rounding=ROUND_CEILING) or Decimal(0)))


def _env_from(env: dict[str, str], store: Store, namespace: str, container: Obj) -> None:
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        for kind, resource in (("secretRef", "secrets"), ("configMapRef", "configmaps")):
            ref = source.get(kind)
            if ref is None:
                continue
            entry = store.get(resource, namespace, ref.get("name", ""))
            if entry is None:
                if ref.get("optional"):
                    continue
                raise ConfigError(f'{kind[:-3].lower()} "{ref.get("name")}" not found')
            for key, value in (entry.obj.get("data") or {}).items():
                text = base64.b64decode(value).decode() if resource == "secrets" else value
                env[prefix + key] = text


def container_env(
    pod: Obj, container: Obj, base: Mapping[str, str], store: Store
) -> tuple[dict[str, str], dict[str, str]]:
    """The container's environment, and the variables references are expanded from (the
    declared ones and the service variables, never those of the runtime: see
    :data:`RUNTIME_VARIABLES`)."""
    declared = {k: v for k, v in base.items() if k not in RUNTIME_VARIABLES}
    namespace = pod["metadata"]["namespace"]
    _env_from(declared, store, namespace, container)
    for var in container.get("env") or []:
        source = var.get("valueFrom")
        if not source:
            declared[var["name"]] = expand(var.get("value", ""), declared)
            continue
        value: str | None
        if "fieldRef" in source:
            value = downward_value(pod, source["fieldRef"].get("fieldPath", ""))
        elif "secretKeyRef" in source:
            value = _lookup(store, namespace, source["secretKeyRef"], "secrets")
        elif "configMapKeyRef" in source:
            value = _lookup(store, namespace, source["configMapKeyRef"], "configmaps")
        else:
            value = _resource_value(container, source.get("resourceFieldRef") or {})
        if value is not None:
            declared[var["name"]] = value
    return {**base, **declared}, declared


@dataclass
class LaunchSpec:
    """What ``_wrapper.py`` needs to start one container process."""

    argv: list[str]
    env: dict[str, str]
    cwd: str
    mode: str
    scratch: str
    mounts: list[dict[str, Any]] = field(default_factory=list)
    cgroup: str | None = None
    uid: int | None = None
    gid: int | None = None
    groups: list[int] = field(default_factory=list)
    no_new_privs: bool = False
    # Host paths that stand for the container's image: kept visible below a volume.
    keep: list[str] = field(default_factory=list)
    # Host paths the container must not see (the state directory, the kubeconfig...).
    hide: list[str] = field(default_factory=list)
    pid_namespace: bool = False
    capabilities: list[int] | None = None  # the bounding set; None: leave it whole


def image_paths() -> list[str]:
    """The host paths every container runs from, as a real one runs from its image: this
    interpreter's prefixes and the directory the ``localcluster`` package (and, in an
    editable install, the project's other packages) is loaded from. A volume mounted over
    one of their parents (an emptyDir at /tmp while they are under /tmp) must not hide them."""
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, str(Path(__file__).parents[2])}
    found = sorted(os.path.realpath(p) for p in paths)
    return [p for p in found if not any(p.startswith(q.rstrip("/") + "/") for q in found)]


class Process:
    """One running container process (the leader of its own process group)."""

    def __init__(self, spec: LaunchSpec, *, spec_path: Path, log_path: Path) -> None:
        """Start it; raises StartFailed with the runtime's message if it did not start."""
        read_end, write_end = os.pipe()
        payload = {**asdict(spec), "status_fd": write_end, "parent": os.getpid()}
        # The spec holds the environment, secrets included: readable by root only.
        fd = os.open(spec_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(json.dumps(payload))
        try:
            with open(log_path, "ab") as log:
                self._popen = subprocess.Popen(
                    [sys.executable, "-S", str(WRAPPER), str(spec_path)],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    pass_fds=(write_end,),
                    start_new_session=True,
                    close_fds=True,
                    env={},
                )
        except OSError as exc:
            # No log file or no process (disk full, out of descriptors): the container
            # ends with StartError instead of leaving its pod waiting for ever.
            os.close(read_end)
            raise StartFailed(f"cannot start the container process: {exc}") from exc
        finally:
            os.close(write_end)
        with os.fdopen(read_end, "rb") as status:
            report = status.read()
        self.pid = self._popen.pid
        if report:
            self._popen.wait()
            raise StartFailed(json.loads(report)["message"])

    def wait(self) -> int:
        """The exit code, 128 + the signal number for a process killed by a signal."""
        code = self._popen.wait()
        return code if code >= 0 else 128 - code

    def signal_group(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signum)

    def kill_group(self) -> None:
        self.signal_group(signal.SIGKILL)


class Janitor:
    """A helper process that kills the containers still running if the local cluster dies."""

    def __init__(self, *, cgroup_base: Path | None = None) -> None:
        extra = [str(cgroup_base)] if cgroup_base is not None else []
        self._lock = threading.Lock()
        self._process = subprocess.Popen(
            [sys.executable, "-S", str(JANITOR), *extra],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
            env={},
        )

    def _send(self, line: str) -> None:
        stdin = self._process.stdin
        with self._lock, contextlib.suppress(OSError, ValueError):
            if stdin is not None:
                stdin.write(line.encode() + b"\n")
                stdin.flush()

    def watch(self, process: Process) -> None:
        self._send(f"+{process.pid}")

    def forget(self, process: Process) -> None:
        self._send(f"-{process.pid}")

    def close(self) -> None:
        with self._lock, contextlib.suppress(OSError):
            if self._process.stdin is not None:
                self._process.stdin.close()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
