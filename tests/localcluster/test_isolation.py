"""What a container of the local cluster can reach of the node: its identity, its view of the
file system, its processes, its read-only mounts.

Each test runs against a local cluster of its own per mount mode (``root`` and ``userns``),
with its state directory under /tmp where any user may traverse it (the session's is below
pytest's private directory), so that only the container's view keeps it out of reach.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes
import pytest

import localcluster
from localcluster.cluster import LocalCluster
from tests.support.isolation import (
    Check,
    leaked,
    probe_command,
    probe_report,
    shared_directory,
)
from tests.support.kube import container, is_finished, is_running, job_manifest, wait_for_pod
from tests.support.names import unique_name
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

NAMESPACE = "default"
TOKEN_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
# What pman's job pods ask for (pman/jobspec.py), without a fixed UID.
POD_SECURITY = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
CONTAINER_SECURITY = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


@dataclass
class Node:
    cluster: LocalCluster
    core: kubernetes.client.CoreV1Api
    batch: kubernetes.client.BatchV1Api
    mode: str

    def run(self, manifest: dict[str, Any]) -> Any:
        self.batch.create_namespaced_job(NAMESPACE, manifest)
        return wait_for_pod(self.core, NAMESPACE, manifest["metadata"]["name"], is_finished)

    def log(self, pod: Any, name: str = "main") -> str:
        return self.core.read_namespaced_pod_log(pod.metadata.name, NAMESPACE, container=name)

    @property
    def machine_file(self) -> Path:
        """A file a container must not create: in the virtualenv, part of its "image", or in
        the interpreter's own tree when the virtualenv is under a temporary directory (which
        containers share, as the local cluster's README says)."""
        shared = {Path(tempfile.gettempdir()).resolve(), Path("/tmp"), Path("/var/tmp")}
        for top in (Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve()):
            if not any(top.is_relative_to(each) for each in shared):
                return top / f"written-by-a-container-{self.mode}"
        pytest.skip("both the virtualenv and the interpreter are under a temporary directory")

    @property
    def tmp_file(self) -> Path:
        return Path(tempfile.gettempdir()) / f"written-by-a-container-{self.mode}"


@pytest.fixture(scope="module", params=["root", "userns"])
def node(request: pytest.FixtureRequest) -> Iterator[Node]:
    mode = request.param
    if mode == "root" and os.geteuid() != 0:
        pytest.skip(f"the root mount mode needs the local cluster to run as root, not UID "
                    f"{os.geteuid()}")  # fmt: skip
    state = Path(tempfile.mkdtemp(prefix="lc-isolation-"))
    try:
        cluster = LocalCluster(state, tls=True, mount_mode=mode).start()
    except RuntimeError as error:
        shutil.rmtree(state, ignore_errors=True)
        if mode == "root":
            raise  # as root the root mode always works: a failure is the local cluster's
        pytest.skip(f"this machine allows no {mode} mount mode: {error}")
    try:
        with kubernetes.config.new_client_from_config(
            config_file=str(cluster.kubeconfig_path)
        ) as api:
            core, batch = kubernetes.client.CoreV1Api(api), kubernetes.client.BatchV1Api(api)
            node = Node(cluster, core, batch, mode)
            try:
                yield node
            finally:
                node.machine_file.unlink(missing_ok=True)
                node.tmp_file.unlink(missing_ok=True)
    finally:
        cluster.stop()
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture(scope="module")
def victim(node: Node) -> Iterator[dict[str, Any]]:
    """Another pod, running, with a Secret volume and a service account token: where its
    files are on the node, and what they hold."""
    marker = f"victim-secret-{unique_name('s')}"
    secret = unique_name("victim")
    node.core.create_namespaced_secret(
        NAMESPACE, {"metadata": {"name": secret}, "stringData": {"key": marker}}
    )
    name = unique_name("victim")
    main = container(
        "main",
        "sleep 300",
        volumeMounts=[{"name": "held", "mountPath": "/etc/victim", "readOnly": True}],
    )
    volumes = [{"name": "held", "secret": {"secretName": secret}}]
    node.batch.create_namespaced_job(NAMESPACE, job_manifest(name, [main], volumes=volumes))
    pod = wait_for_pod(node.core, NAMESPACE, name, is_running)
    directory = (
        node.cluster.state_dir / "pods" / f"{NAMESPACE}_{pod.metadata.name}_{pod.metadata.uid}"
    )
    (token,) = directory.glob("volumes/kube-api-access-*/token")
    secret_file = directory / "volumes" / "held" / "key"
    assert secret_file.read_text() == marker  # where a container would look for it
    try:
        yield {"secret_file": secret_file, "marker": marker, "token": token, "pod": pod}
    finally:
        node.batch.delete_namespaced_job(name, NAMESPACE, propagation_policy="Background")
        node.core.delete_namespaced_secret(secret, NAMESPACE)


def _block_device() -> str | None:
    """A disk of this machine, as a container would open it."""
    for name in sorted(os.listdir("/sys/block")):
        if os.path.exists(f"/dev/{name}") and not name.startswith(("loop", "ram", "zram")):
            return f"/dev/{name}"
    return None


def _attempts(node: Node, victim: dict[str, Any]) -> list[Check]:
    cluster = node.cluster
    assert cluster.tls_files is not None
    state, token = str(cluster.state_dir), cluster.admin_token
    marker, secret_file = victim["marker"], str(victim["secret_file"])
    checks = [
        ("kubeconfig", "read", str(cluster.kubeconfig_path), token),
        ("tls-key", "read", str(cluster.tls_files.key_path), "PRIVATE KEY"),
        ("state-dir", "list", state, "pods"),
        ("other-secret", "read", secret_file, marker),
        ("other-token", "read", str(victim["token"]), victim["token"].read_text()[:64]),
        ("other-root", "read-glob", "/proc/[0-9]*/root/etc/victim/key", marker),
        ("processes", "processes", "", ""),
        # Through the descriptors of a process of the node (its own volumes' parents).
        (
            "descriptors",
            "read-glob",
            "/proc/[0-9]*/fd/*/../../../*/volumes/held/key",
            marker,
        ),
        ("uncover", "umount-read", f"{state}|{secret_file}", marker),
        ("uncover-kubeconfig", "umount-read", f"{state}|{cluster.kubeconfig_path}", token),
        ("core-pattern", "open-write", "/proc/sys/kernel/core_pattern", ""),
        ("read-only-secret", "write", "/etc/own/new", ""),
        ("read-only-dir", "write", "/ro/new", ""),
        ("share", "write", "/share/new", ""),
        ("dev-null", "write", "/dev/null", ""),
        ("dev-shm", "write", "/dev/shm/new", ""),
        ("machine-file", "write", str(node.machine_file), ""),
        ("tmp", "write", str(node.tmp_file), ""),
    ]
    disk = _block_device()
    if disk is not None:
        checks.append(("disk", "read", disk, ""))
    return checks


def _probe_pod(node: Node, victim: dict[str, Any], *, pman_shaped: bool) -> dict[str, Any]:
    own = unique_name("own")
    node.core.create_namespaced_secret(
        NAMESPACE, {"metadata": {"name": own}, "stringData": {"key": "mine"}}
    )
    main = {
        "name": "main",
        "image": "python:3.11-slim",
        "command": probe_command(_attempts(node, victim)),
        "volumeMounts": [
            {"name": "own", "mountPath": "/etc/own", "readOnly": True},
            {"name": "ro", "mountPath": "/ro", "readOnly": True},
            {"name": "share", "mountPath": "/share"},
        ],
    }
    pod_spec: dict[str, Any] = {}
    if pman_shaped:
        main["securityContext"] = CONTAINER_SECURITY
        pod_spec["securityContext"] = POD_SECURITY
    volumes = [
        {"name": "own", "secret": {"secretName": own}},
        {"name": "ro", "emptyDir": {}},
        {"name": "share", "emptyDir": {}},
    ]
    manifest = job_manifest(unique_name("probe"), [main], volumes=volumes, pod_spec=pod_spec)
    try:
        pod = node.run(manifest)
    finally:
        node.core.delete_namespaced_secret(own, NAMESPACE)
    return probe_report(node.log(pod))


def _assert_isolated(report: dict[str, Any]) -> None:
    breaches = _breaches(report)
    assert not breaches, "the container reached:\n" + "\n".join(
        f"  {name}: {what!r}" for name, what in sorted(breaches.items())
    )


def _breaches(report: dict[str, Any]) -> dict[str, str]:
    """What the container reached that it must not (empty when isolated)."""
    checks = report["checks"]
    found = leaked(report)
    processes = checks["processes"]["data"].split()
    if len(processes) > 3:
        found["processes"] = f"{len(processes)} processes visible: {' '.join(processes[:20])}..."
    for name in (
        "core-pattern",
        "read-only-secret",
        "read-only-dir",
        "read-only",
        "disk",
        "machine-file",
    ):
        if name in checks and checks[name]["ok"]:
            found[name] = checks[name]["data"][:80]
    for name in ("read-only-secret", "read-only-dir", "read-only", "machine-file"):
        if name not in checks:
            continue
        if not checks[name]["ok"] and "Read-only file system" not in checks[name]["data"]:
            found[name] = f"refused, but not as read-only: {checks[name]['data']}"
    return found


def test_a_pman_job_container_reaches_nothing_of_the_node(node, victim):
    # The processor of a pman job: runAsNonRoot, no UID given, no capabilities.
    report = _probe_pod(node, victim, pman_shaped=True)
    _assert_isolated(report)
    checks = report["checks"]
    for usable in ("share", "dev-null", "dev-shm", "tmp"):
        assert checks[usable]["ok"], checks[usable]
    from localcluster.node.security import arbitrary_uid

    assert (report["uid"], report["gid"]) == (arbitrary_uid(NAMESPACE), 0)


def test_a_root_container_reaches_nothing_of_the_node(node, victim):
    # No security context: root, as with an image whose user is root; its capabilities are
    # a container runtime's default set, which does not let it lift what hides the node.
    report = _probe_pod(node, victim, pman_shaped=False)
    assert report["uid"] == 0
    _assert_isolated(report)
    for usable in ("share", "dev-null", "dev-shm", "tmp"):
        assert report["checks"][usable]["ok"], report["checks"][usable]


def _id_script(*, secret: bool = False) -> str:
    return (
        'echo "$(id -u) $(id -g) $(id -G)"; '
        + ("cat /etc/own/key; echo; " if secret else "")
        + f"head -c 10 {TOKEN_DIR}/token >/dev/null && echo token-readable; "
        + "touch /share/$HOSTNAME-$(id -u) && echo share-writable"
    )


def test_run_as_user_and_group_at_pod_and_container_level(node):
    main = container("main", _id_script(), volumeMounts=[{"name": "share", "mountPath": "/share"}])
    other = container(
        "other",
        _id_script(),
        securityContext={"runAsUser": 2001, "runAsGroup": 3001},
        volumeMounts=[{"name": "share", "mountPath": "/share"}],
    )
    manifest = job_manifest(
        unique_name("ids"),
        [main, other],
        volumes=[{"name": "share", "emptyDir": {}}],
        pod_spec={"securityContext": {"runAsUser": 2000, "runAsGroup": 3000}},
    )
    pod = node.run(manifest)
    first = node.log(pod, "main").splitlines()
    second = node.log(pod, "other").splitlines()
    assert first[0].split()[:2] == ["2000", "3000"]
    assert second[0].split()[:2] == ["2001", "3001"]
    assert first[1:] == second[1:] == ["token-readable", "share-writable"]


def test_fs_group_and_supplemental_groups_make_volumes_readable(node):
    if node.mode == "userns":
        pytest.skip(
            "supplementary groups (fsGroup, supplementalGroups) need the root mount mode: an "
            "unprivileged user namespace denies setgroups"
        )
    secret = unique_name("grouped")
    node.core.create_namespaced_secret(
        NAMESPACE, {"metadata": {"name": secret}, "stringData": {"key": "for-the-group"}}
    )
    main = container(
        "main",
        _id_script(secret=True),
        volumeMounts=[
            {"name": "own", "mountPath": "/etc/own", "readOnly": True},
            {"name": "share", "mountPath": "/share"},
        ],
    )
    volumes = [
        # Readable by its owner only: the pod reads it through its fsGroup, as on a real node.
        {"name": "own", "secret": {"secretName": secret, "defaultMode": 0o400}},
        {"name": "share", "emptyDir": {}},
    ]
    security = {
        "runAsUser": 2000,
        "runAsGroup": 3000,
        "fsGroup": 4000,
        "supplementalGroups": [5000],
    }
    manifest = job_manifest(
        unique_name("groups"), [main], volumes=volumes, pod_spec={"securityContext": security}
    )
    try:
        pod = node.run(manifest)
    finally:
        node.core.delete_namespaced_secret(secret, NAMESPACE)
    lines = node.log(pod).splitlines()
    ids = lines[0].split()
    assert ids[:2] == ["2000", "3000"]
    assert {"4000", "5000"} <= set(ids[2:])
    assert lines[1:] == ["for-the-group", "token-readable", "share-writable"]


def test_run_as_non_root_without_a_uid_gets_an_arbitrary_one_and_finds_the_programs(node):
    script = (
        'echo "$(id -u) $(id -g)"; '
        "publisher --help >/dev/null && echo publisher-found; "
        "python -c 'import localcluster, kubernetes' && echo python-found"
    )
    main = container("main", script, securityContext=CONTAINER_SECURITY)
    manifest = job_manifest(
        unique_name("nonroot"), [main], pod_spec={"securityContext": POD_SECURITY}
    )
    pod = node.run(manifest)
    lines = node.log(pod).splitlines()
    uid, gid = (int(n) for n in lines[0].split())
    assert uid != 0
    assert gid == 0
    assert lines[1:] == ["publisher-found", "python-found"]
    from localcluster.node.security import arbitrary_uid

    assert uid == arbitrary_uid(NAMESPACE)


def test_run_as_non_root_with_uid_0_does_not_start(node):
    main = container("main", "id -u")
    security = {"runAsNonRoot": True, "runAsUser": 0}
    name = unique_name("rootuid")
    node.batch.create_namespaced_job(
        NAMESPACE, job_manifest(name, [main], pod_spec={"securityContext": security})
    )
    try:

        def waiting() -> Any:
            pods = node.core.list_namespaced_pod(NAMESPACE, label_selector=f"job-name={name}")
            for pod in pods.items:
                for status in pod.status.container_statuses or []:
                    if status.state.terminated is not None:
                        raise AssertionError(f"it ran: {status.state.terminated}")
                    if status.state.waiting and status.state.waiting.message:
                        return status.state.waiting
            return None

        state = eventually(waiting, timeout=30, what="the container refused")
    finally:
        node.batch.delete_namespaced_job(name, NAMESPACE, propagation_policy="Background")
    assert state.reason == "CreateContainerConfigError"
    assert "runAsUser breaks non-root policy" in state.message


def test_the_cluster_says_what_isolation_it_gives(node):
    summary = node.cluster.isolation.summary()
    assert "readOnly" in summary
    assert str(node.cluster.state_dir) in summary
    assert ("see only their own processes" in summary) == node.cluster.isolation.pid_namespace


def test_the_memory_watchdog_counts_the_container_not_its_init(tmp_path):
    # The wrapper and the init are two small Python processes (about 10 MiB resident each,
    # mostly shared): under a tight limit, only the container's own processes may count.
    with (
        LocalCluster(tmp_path, memory_mode="watchdog") as cluster,
        kubernetes.config.new_client_from_config(config_file=str(cluster.kubeconfig_path)) as api,
    ):
        if not cluster.isolation.pid_namespace:
            pytest.skip("no PID namespace on this machine: containers have no init")
        batch, core = kubernetes.client.BatchV1Api(api), kubernetes.client.CoreV1Api(api)
        main = container("main", "sleep 1", resources={"limits": {"memory": "16Mi"}})
        batch.create_namespaced_job(NAMESPACE, job_manifest("small", [main]))
        pod = wait_for_pod(core, NAMESPACE, "small", is_finished)
    terminated = pod.status.container_statuses[0].state.terminated
    assert (terminated.reason, terminated.exit_code) == ("Completed", 0)


# Run as an unprivileged user: a local cluster (whatever mode it finds) and one pman-shaped
# pod trying what the other tests try; prints the mode and the probe's report as JSON.
UNPRIVILEGED_RUN = r"""
import json, sys, time
sys.path[:0] = json.loads(sys.argv[1])
import kubernetes
from localcluster.cluster import LocalCluster
from tests.support.isolation import probe_command, probe_report

state = sys.argv[2]
with LocalCluster(state, tls=True) as cluster, kubernetes.config.new_client_from_config(
    config_file=str(cluster.kubeconfig_path)
) as api:
    checks = [
        ("kubeconfig", "read", str(cluster.kubeconfig_path), cluster.admin_token),
        ("tls-key", "read", str(cluster.tls_files.key_path), "PRIVATE KEY"),
        ("state-dir", "list", state, "pods"),
        ("processes", "processes", "", ""),
        ("read-only", "write", "/ro/x", ""),
        ("share", "write", "/share/x", ""),
    ]
    main = {
        "name": "main", "image": "python:3.11-slim", "command": probe_command(checks),
        "securityContext": json.loads(sys.argv[3]),
        "volumeMounts": [
            {"name": "ro", "mountPath": "/ro", "readOnly": True},
            {"name": "share", "mountPath": "/share"},
        ],
    }
    spec = {
        "restartPolicy": "Never", "containers": [main],
        "securityContext": {"runAsNonRoot": True},
        "volumes": [{"name": "ro", "emptyDir": {}}, {"name": "share", "emptyDir": {}}],
    }
    batch, core = kubernetes.client.BatchV1Api(api), kubernetes.client.CoreV1Api(api)
    job = {"metadata": {"name": "probe"}, "spec": {"backoffLimit": 0, "template": {"spec": spec}}}
    batch.create_namespaced_job("default", job)
    for _ in range(600):
        pods = core.list_namespaced_pod("default").items
        if pods and pods[0].status.phase in ("Succeeded", "Failed"):
            break
        time.sleep(0.1)
    log = core.read_namespaced_pod_log(pods[0].metadata.name, "default", container="main")
    print(json.dumps({
        "mode": cluster.mount_mode,
        "summary": cluster.isolation.summary() if getattr(cluster, "isolation", None) else "",
        "report": probe_report(log),
    }))
"""


def _unprivileged_python() -> str | None:
    """A Python of this minor version that a user other than root may run (this one may
    live under /root), or None."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for directory in ("/usr/bin", "/usr/local/bin"):
        candidate = Path(directory) / version
        if candidate.exists() and os.stat(candidate).st_mode & 0o001:
            return str(candidate)
    return None


def test_an_unprivileged_local_cluster_hides_its_state_in_a_user_namespace():
    if os.geteuid() != 0:
        pytest.skip("the test runs the local cluster as another user, which needs root")
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("this machine has no user nobody to run the local cluster as")
    python = _unprivileged_python()
    if python is None:
        pytest.skip(f"no Python {sys.version_info.major}.{sys.version_info.minor} outside "
                    f"{sys.base_prefix} for an unprivileged user to run")  # fmt: skip
    project = str(Path(localcluster.__file__).resolve().parents[1])
    site = [p for p in sys.path if p.endswith("site-packages") and p.startswith(sys.prefix)]
    with shared_directory() as top:
        os.chown(top, nobody.pw_uid, nobody.pw_gid)
        done = subprocess.run(
            [python, "-S", "-c", UNPRIVILEGED_RUN, json.dumps([project, *site]),
             str(top / "state"), json.dumps(CONTAINER_SECURITY)],
            capture_output=True, text=True, timeout=120, cwd=top,
            env={"HOME": str(top), "PATH": "/usr/bin:/bin"},
            user=nobody.pw_uid, group=nobody.pw_gid, extra_groups=[],
        )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.splitlines()[-1])
    if result["mode"] == "rewrite":
        assert result["summary"].startswith("none: this machine allows no mount namespace")
        pytest.skip(f"this machine gives an unprivileged user no namespace: {result['summary']}")
    assert result["mode"] == "userns"
    report = result["report"]
    _assert_isolated(report)
    assert report["checks"]["share"]["ok"], report["checks"]["share"]
    from localcluster.node.security import arbitrary_uid

    assert (report["uid"], report["gid"]) == (arbitrary_uid(NAMESPACE), 0)
    assert "which for the kernel is nobody" in result["summary"]
