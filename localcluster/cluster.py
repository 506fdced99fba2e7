"""``LocalCluster``: the whole local cluster in one object, for the CLI, tests and tools.

    with LocalCluster(state_dir, tls=True) as cluster:
        client = kubernetes.config.new_client_from_config(str(cluster.kubeconfig_path))

``start()`` chooses the mount mode, the isolation containers get and the memory mechanism,
starts the controllers, the kubelet and the HTTP server, and writes the kubeconfig last,
once the server answers. Containers never see the state directory, the kubeconfig, the
audit log, nor the paths given as ``hide`` (where this machine allows mount namespaces;
``cluster.isolation.summary()`` says what it allows).
``stop()`` ends every process it started. Objects live in memory only; the state
directory holds the kubeconfig, the TLS files, and each pod's volumes and logs.
"""

from __future__ import annotations

import base64
import logging
import os
import pwd
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from localcluster.apiserver.api import Api
from localcluster.apiserver.audit import AuditLog
from localcluster.apiserver.auth import ADMIN_USER, Authenticator
from localcluster.apiserver.events import EventRecorder
from localcluster.apiserver.lifecycle import Lifecycle
from localcluster.apiserver.registry import Store
from localcluster.apiserver.server import ApiServer
from localcluster.apiserver.tls import TlsFiles, make_tls_files
from localcluster.controllers.gc import GarbageCollector
from localcluster.controllers.jobcontroller import JobController
from localcluster.node import mounts
from localcluster.node.kubelet import CLAIMS_DIR, Kubelet, KubeletConfig
from localcluster.node.logs import PodLogs
from localcluster.node.memory import MemoryLimiter
from localcluster.node.runtime import Janitor
from localcluster.node.security import Isolation
from localcluster.node.volumes import claim_directory

log = logging.getLogger("localcluster")

HOST = "127.0.0.1"
Obj = dict[str, Any]


class LocalCluster:
    """A Kubernetes API on 127.0.0.1 whose pods run as local processes."""

    def __init__(
        self,
        state_dir: str | os.PathLike[str] | None = None,
        *,
        port: int = 0,
        tls: bool = False,
        audit_log: str | os.PathLike[str] | None = None,
        kubeconfig: str | os.PathLike[str] | None = None,
        mount_mode: str = "auto",
        memory_mode: str = "auto",
        history: int = 50_000,
        hide: Iterable[str | os.PathLike[str]] = (),
    ) -> None:
        """Prepare (nothing runs until ``start()``).

        ``state_dir``: where volumes, logs, TLS files and the kubeconfig go (a temporary
        directory, removed by ``stop()``, when None). ``kubeconfig``: where to write the
        kubeconfig (default ``<state_dir>/kubeconfig``). ``mount_mode``: ``auto``, ``root``,
        ``userns`` or ``rewrite``. ``memory_mode``: ``auto`` (cgroup if possible) or
        ``watchdog``. ``history``: how many changes watches can resume from. ``hide``:
        more paths containers must not see (the development stack hides its directory,
        which holds the Swift credentials and data).
        """
        self._own_state = state_dir is None
        self.state_dir = Path(state_dir or tempfile.mkdtemp(prefix="localcluster-"))
        self.port = port
        self.tls = tls
        self.audit_log_path = Path(audit_log) if audit_log else None
        self.kubeconfig_path = Path(kubeconfig) if kubeconfig else self.state_dir / "kubeconfig"
        self._mount_mode = mount_mode
        self._memory_mode = memory_mode
        self._history = history
        self._hide = [Path(p) for p in hide]
        self.tls_files: TlsFiles | None = None
        self.mount_mode = ""
        self.isolation: Isolation | None = None
        self.memory_mechanism = ""
        self._started = False
        self._parts: list[Any] = []

    # -- properties

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{HOST}:{self.port}"

    @property
    def ca_path(self) -> Path | None:
        return self.tls_files.ca_path if self.tls_files else None

    @property
    def admin_token(self) -> str:
        return self.auth.admin_token

    # -- starting and stopping

    def start(self) -> LocalCluster:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        # Traversable by container processes that run as another user (runAsUser).
        self.state_dir.chmod(0o711)
        (self.state_dir / "pods").mkdir(mode=0o711, exist_ok=True)
        try:
            self._start_parts()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_parts(self) -> None:
        ca_pem = ""
        if self.tls:
            self.tls_files = make_tls_files(self.state_dir)
            ca_pem = self.tls_files.ca_pem()
        self.store = Store(history=self._history)
        self.lifecycle = Lifecycle(self.store, ca_pem=ca_pem)
        self.events = EventRecorder(self.lifecycle)
        self.auth = Authenticator(pod_exists=self._pod_exists)
        self.audit = AuditLog(str(self.audit_log_path)) if self.audit_log_path else None
        self.mount_mode = mounts.detect_mode(self.state_dir / "pods", wanted=self._mount_mode)
        self.isolation = Isolation(
            mount_mode=self.mount_mode,
            pid_namespace=mounts.detect_pid_namespace(self.mount_mode, self.state_dir / "pods"),
            user=_user_name(),
            root=os.geteuid() == 0,
            hidden=self._hidden(),
        )
        self.memory = MemoryLimiter(mode="watchdog" if self._memory_mode == "watchdog" else "auto")
        self.memory_mechanism = self.memory.mechanism
        self.gc = GarbageCollector(self.store, self.lifecycle)
        self.jobs = JobController(self.store, self.lifecycle, self.events)
        self.api = Api(
            self.store,
            self.lifecycle,
            self.auth,
            logs=_LateLogs(self),
            audit=self.audit,
            address=lambda: f"{HOST}:{self.port}",
        )
        context = self.tls_files.server_context() if self.tls_files else None
        self.server = ApiServer(self.api, host=HOST, port=self.port, context=context)
        self.port = self.server.port
        service = (HOST, self.port) if self.tls else None
        config = KubeletConfig(self.state_dir, self.mount_mode, service, isolation=self.isolation)
        self.janitor = Janitor(cgroup_base=self.memory.base)
        self.kubelet = Kubelet(
            self.store,
            self.lifecycle,
            self.events,
            self.memory,
            config,
            token_for=self._token_for,
            janitor=self.janitor,
        )
        self.logs = PodLogs(self.store, self.kubelet)
        self.lifecycle.ensure_namespace("default")
        self._parts = [self.server, self.kubelet, self.jobs, self.gc]
        for part in (self.gc, self.jobs, self.kubelet, self.server):
            part.start()
        self._started = True
        self._write_kubeconfig()
        log.info("serving the Kubernetes API at %s", self.url)
        log.info("volumes reach containers through %s", mounts.DESCRIPTIONS[self.mount_mode])
        log.info("isolation: %s", self.isolation.summary())
        log.info("memory limits are enforced with %s", self.memory_mechanism)

    def _hidden(self) -> tuple[str, ...]:
        """What containers must not see, as real paths, none inside another."""
        paths = [self.state_dir, self.kubeconfig_path, *self._hide]
        if self.audit_log_path is not None:
            paths.append(self.audit_log_path)
        found = sorted({os.path.realpath(p) for p in paths})
        return tuple(p for p in found if not any(p.startswith(q + "/") for q in found))

    def stop(self) -> None:
        """Stop serving and end every process started for pods; idempotent."""
        for part in self._parts:
            try:
                part.stop()
            except Exception:
                log.exception("error while stopping %s", type(part).__name__)
        self._parts = []
        if getattr(self, "store", None) is not None:
            self.store.close_watches()
        if getattr(self, "memory", None) is not None:
            self.memory.close()
        if getattr(self, "janitor", None) is not None:
            self.janitor.close()
        if getattr(self, "audit", None) is not None:
            self.audit.close()
        if self._started:
            log.info("local cluster stopped")
        self._started = False
        if self._own_state:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- kubeconfig and tokens

    def kubeconfig(self) -> Obj:
        cluster: Obj = {"server": self.url}
        if self.tls_files is not None:
            cluster["certificate-authority-data"] = base64.b64encode(
                self.tls_files.ca_path.read_bytes()
            ).decode()
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "localcluster", "cluster": cluster}],
            "users": [{"name": ADMIN_USER, "user": {"token": self.auth.admin_token}}],
            "contexts": [
                {
                    "name": "localcluster",
                    "context": {
                        "cluster": "localcluster",
                        "user": ADMIN_USER,
                        "namespace": "default",
                    },
                }
            ],
            "current-context": "localcluster",
            "preferences": {},
        }

    def _write_kubeconfig(self) -> None:
        path = self.kubeconfig_path
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            yaml.safe_dump(self.kubeconfig(), handle, sort_keys=False)
        os.replace(temporary, path)

    def _pod_exists(self, namespace: str, name: str, uid: str) -> bool:
        entry = self.store.get("pods", namespace, name)
        return entry is not None and entry.obj["metadata"]["uid"] == uid

    def _token_for(self, pod: Obj, expiration: int) -> str:
        meta = pod["metadata"]
        return self.auth.service_account_token(
            namespace=meta.get("namespace", ""),
            service_account=pod.get("spec", {}).get("serviceAccountName") or "default",
            pod_name=meta.get("name", ""),
            pod_uid=meta.get("uid", ""),
            expiration_seconds=expiration,
        )

    # -- inspection and fault injection, for tests and tools

    def compact(self) -> int:
        """Drop the watch history: a watch from an older resourceVersion now gets 410."""
        return self.store.compact()

    @contextmanager
    def watch_lag(self, resource: str, labels: dict[str, str]) -> Iterator[None]:
        """Within the block, watches of ``resource`` (``"pods"``, ``"jobs"``...) fall behind
        at their first event about an object carrying all of ``labels``: they receive no
        more events until the block ends, then all of them, in order. Lists and reads are
        up to date."""

        def matches(obj: dict[str, Any]) -> bool:
            carried = (obj.get("metadata") or {}).get("labels") or {}
            return all(carried.get(key) == value for key, value in labels.items())

        release = self.store.hold(resource, matches)
        try:
            yield
        finally:
            release()

    def container_pids(self) -> dict[tuple[str, str, str], int]:
        """(namespace, pod, container) -> pid of every container process now running."""
        return self.kubelet.pids()

    def container_finished_at(self, namespace: str, pod: str, container: str) -> float | None:
        """When the container's process was reaped (``time.time()``, sub-second precision)."""
        return self.kubelet.finished_at(namespace, pod, container)

    def claim_directory(self, namespace: str, claim: str) -> Path:
        """The directory that PersistentVolumeClaim ``claim`` of ``namespace`` stands for
        (made empty if it does not exist yet); pods mounting the claim see its files."""
        return claim_directory(self.state_dir / CLAIMS_DIR, namespace, claim)


def _user_name() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return f"UID {os.geteuid()}"


class _LateLogs:
    """The API is built before the kubelet; this forwards log requests once both exist."""

    def __init__(self, cluster: LocalCluster) -> None:
        self._cluster = cluster

    def logs(self, namespace: str, name: str, query: Any) -> Any:
        return self._cluster.logs.logs(namespace, name, query)
