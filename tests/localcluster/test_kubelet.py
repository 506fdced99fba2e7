"""The kubelet: environment, volumes, logs, memory limits, start errors, scheduling."""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path

import kubernetes
import pytest
from kubernetes.client.exceptions import ApiException

import localcluster
from localcluster.cluster import LocalCluster
from localcluster.node.runtime import image_paths
from tests.support.kube import (
    PYTHON_IMAGE,
    container,
    is_finished,
    is_running,
    job_manifest,
    state_of,
    status_body,
    wait_for_pod,
)
from tests.support.names import unique_name


def _run(jobs, core, namespace, manifest, *, timeout=60):
    """Create the Job and return its pod once finished."""
    jobs(manifest)
    return wait_for_pod(core, namespace, manifest["metadata"]["name"], is_finished, timeout=timeout)


def _log(core, namespace, pod, name="main"):
    return core.read_namespaced_pod_log(pod.metadata.name, namespace, container=name)


def test_environment(jobs, core, namespace, kube_cluster):
    name = unique_name("env")
    script = (
        'echo "name=$POD_NAME ns=$POD_NAMESPACE greeting=$GREETING host=$HOSTNAME"; pwd; '
        'echo "$PATH"'
    )
    main = container(
        "main",
        script,
        workingDir="/tmp",
        env=[
            {"name": "WHO", "value": "world"},
            {"name": "GREETING", "value": "hello $(WHO) $$(WHO)"},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {
                "name": "POD_NAMESPACE",
                "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
            },
        ],
    )
    pod = _run(jobs, core, namespace, job_manifest(name, [main]))
    lines = _log(core, namespace, pod).splitlines()
    pod_name = pod.metadata.name
    expected = f"name={pod_name} ns={namespace} greeting=hello world $(WHO) host={pod_name}"
    assert lines[:2] == [expected, "/tmp"]
    if kube_cluster.local is not None:
        assert lines[2].split(":")[0] == os.path.dirname(sys.executable)


def test_command_and_args_expand_env(jobs, core, namespace):
    name = unique_name("args")
    main = {
        "name": "main",
        "image": "busybox:1.36",
        "command": ["echo"],
        "args": ["$(WORD)", "$$(WORD)", "plain"],
        "env": [{"name": "WORD", "value": "expanded"}],
    }
    pod = _run(jobs, core, namespace, job_manifest(name, [main]))
    assert _log(core, namespace, pod) == "expanded $(WORD) plain\n"


def test_expansion_follows_kubernetes_rules(jobs, core, namespace):
    # Kubernetes expands references to the container's declared variables only (not to
    # what the image or the runtime sets, such as HOME or PATH), takes everything up to the
    # first ")" as the name, leaves unknown references as they are, and reads "$$" as "$".
    name = unique_name("expand")
    words = ["$(WORD)", "$$(WORD)", "$$$(WORD)", "$(HOME)", "$(PATH)", "$(a$$b)", "$(",
             "$x", "cost: 5$", "$(WORD", "$()", "$(EARLY)"]  # fmt: skip
    main = {
        "name": "main",
        "image": PYTHON_IMAGE,
        "command": ["python3", "-c", "import json, sys; print(json.dumps(sys.argv[1:]))"],
        "args": words,
        "env": [
            {"name": "EARLY", "value": "<$(WORD)>"},
            {"name": "WORD", "value": "expanded"},
        ],
    }
    pod = _run(jobs, core, namespace, job_manifest(name, [main]))
    assert json.loads(_log(core, namespace, pod)) == [
        "expanded", "$(WORD)", "$expanded", "$(HOME)", "$(PATH)", "$(a$$b)", "$(", "$x",
        "cost: 5$", "$(WORD", "$()", "<$(WORD)>",
    ]  # fmt: skip


def test_secret_volume_is_read_only_and_waits_for_the_secret(jobs, core, namespace, kube_cluster):
    name = unique_name("secretvol")
    secret = unique_name("creds")
    script = "cat /etc/creds/key; echo; touch /etc/creds/new && echo writable || echo read-only"
    main = container(
        "main",
        script,
        volumeMounts=[{"name": "creds", "mountPath": "/etc/creds", "readOnly": True}],
    )
    volumes = [{"name": "creds", "secret": {"secretName": secret}}]
    jobs(job_manifest(name, [main], volumes=volumes))
    waiting = wait_for_pod(
        core,
        namespace,
        name,
        lambda p: (
            bool(p.status.container_statuses)
            and p.status.container_statuses[0].state.waiting is not None
        ),
    )
    assert waiting.status.container_statuses[0].state.waiting.reason == "ContainerCreating"
    stream = kubernetes.watch.Watch().stream(
        core.list_namespaced_event,
        namespace,
        field_selector=f"involvedObject.name={waiting.metadata.name},reason=FailedMount",
        timeout_seconds=30,
    )
    assert next(stream)["object"].type == "Warning"
    core.create_namespaced_secret(
        namespace, {"metadata": {"name": secret}, "stringData": {"key": "s3cret"}}
    )
    try:
        pod = wait_for_pod(core, namespace, name, is_finished)
        log = _log(core, namespace, pod).splitlines()
        assert log[0] == "s3cret"
        if kube_cluster.local is None or kube_cluster.local.mount_mode != "rewrite":
            assert log[-1] == "read-only"
    finally:
        core.delete_namespaced_secret(secret, namespace)


def test_missing_mount_points_are_not_created_on_the_host(jobs, core, namespace, local):
    if local.mount_mode == "rewrite":
        pytest.skip("needs mount namespaces")
    top = f"/{unique_name('lc-mountpoint')}"
    main = container(
        "main",
        f"echo here > {top}/deep/file; cat {top}/deep/file",
        volumeMounts=[{"name": "scratch", "mountPath": f"{top}/deep"}],
    )
    pod = _run(
        jobs,
        core,
        namespace,
        job_manifest(unique_name("mounts"), [main], volumes=[{"name": "scratch", "emptyDir": {}}]),
    )
    assert _log(core, namespace, pod) == "here\n"
    assert not os.path.exists(top)


def test_volume_over_the_directory_holding_the_cluster_state(jobs, core, namespace, local):
    # The suite keeps the cluster's state under /tmp: an emptyDir at /tmp must not hide the
    # other volumes' sources from the container being started.
    if local.mount_mode == "rewrite":
        pytest.skip("needs mount namespaces")
    secret = unique_name("tmpcreds")
    core.create_namespaced_secret(
        namespace, {"metadata": {"name": secret}, "stringData": {"key": "kept"}}
    )
    main = container(
        "main",
        "cat /etc/creds/key; echo; ls -A /tmp | wc -l",
        volumeMounts=[
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "creds", "mountPath": "/etc/creds", "readOnly": True},
        ],
    )
    volumes = [{"name": "tmp", "emptyDir": {}}, {"name": "creds", "secret": {"secretName": secret}}]
    try:
        pod = _run(
            jobs, core, namespace, job_manifest(unique_name("tmpvol"), [main], volumes=volumes)
        )
    finally:
        core.delete_namespaced_secret(secret, namespace)
    assert state_of(pod, "main").terminated.exit_code == 0
    # Nothing in the fresh emptyDir but the image's own paths bound back (a checkout
    # under /tmp).
    assert _log(core, namespace, pod).split() == ["kept", str(len(_image_entries("/tmp")))]


def _image_entries(directory: str) -> set[str]:
    """Names in ``directory`` of the host paths containers keep seeing as their image."""
    return {
        Path(path).relative_to(directory).parts[0]
        for path in image_paths()
        if path.startswith(directory.rstrip("/") + "/")
    }


def test_a_volume_over_the_projects_directory_keeps_the_image_visible(jobs, core, namespace, local):
    # A checkout under /tmp runs pods with an emptyDir at /tmp (pman's Deployment has one):
    # the interpreter and the project's packages stay visible, as a real container's image
    # does, while the rest of the directory is the volume's.
    if local.mount_mode == "rewrite":
        pytest.skip("needs mount namespaces")
    parent = Path(localcluster.__file__).resolve().parent.parent.parent
    if parent == Path("/"):
        pytest.skip("the project is at the top of the file system")
    marker = unique_name("written")
    script = (
        'python -c "import localcluster.node.runtime, sys; print(sys.prefix)" && '
        f"echo x > {parent}/{marker} && ls -A {parent}"
    )
    main = container("main", script, volumeMounts=[{"name": "v", "mountPath": str(parent)}])
    pod = _run(
        jobs,
        core,
        namespace,
        job_manifest(unique_name("imgvol"), [main], volumes=[{"name": "v", "emptyDir": {}}]),
    )
    lines = _log(core, namespace, pod).splitlines()
    assert state_of(pod, "main").terminated.exit_code == 0, lines
    assert lines[0] == sys.prefix
    assert set(lines[1:]) == _image_entries(str(parent)) | {marker}
    assert not (parent / marker).exists()  # written to the volume, not to the host


def test_logs_tail_and_errors(jobs, core, namespace):
    name = unique_name("logs")
    main = container("main", "for i in 1 2 3 4 5; do echo line $i; done; echo oops >&2")
    side = container("side", "true")
    pod = _run(jobs, core, namespace, job_manifest(name, [main, side]))
    assert _log(core, namespace, pod) == "line 1\nline 2\nline 3\nline 4\nline 5\noops\n"
    tail = core.read_namespaced_pod_log(
        pod.metadata.name, namespace, container="main", tail_lines=2
    )
    assert tail == "line 5\noops\n"
    with pytest.raises(ApiException) as raised:
        core.read_namespaced_pod_log(pod.metadata.name, namespace)
    assert raised.value.status == 400
    assert "a container name must be specified" in status_body(raised.value)["message"]
    with pytest.raises(ApiException) as raised:
        core.read_namespaced_pod_log(pod.metadata.name, namespace, container="nope")
    assert raised.value.status == 400
    with pytest.raises(ApiException) as raised:
        core.read_namespaced_pod_log("no-such-pod", namespace, container="main")
    assert raised.value.status == 404


def test_follow_streams_until_the_container_ends(jobs, core, namespace):
    name = unique_name("follow")
    main = container("main", "echo first; sleep 1; echo last")
    jobs(job_manifest(name, [main]))
    pod = wait_for_pod(core, namespace, name, is_running)
    stream = kubernetes.watch.Watch().stream(
        core.read_namespaced_pod_log, pod.metadata.name, namespace, container="main"
    )
    assert list(stream) == ["first", "last"]


def test_log_of_a_container_waiting_to_start_is_400(jobs, core, namespace):
    name = unique_name("waiting")
    init = [container("init", "sleep 30")]
    jobs(job_manifest(name, [container("main", "true")], init=init))
    pod = wait_for_pod(core, namespace, name, lambda p: state_of_init_running(p))
    with pytest.raises(ApiException) as raised:
        core.read_namespaced_pod_log(pod.metadata.name, namespace, container="main")
    assert raised.value.status == 400
    assert "is waiting to start: PodInitializing" in status_body(raised.value)["message"]


def state_of_init_running(pod) -> bool:
    statuses = pod.status.init_container_statuses or []
    return bool(statuses) and statuses[0].state.running is not None


def test_missing_command_is_a_start_error(jobs, core, namespace):
    name = unique_name("nocommand")
    main = {"name": "main", "image": "busybox:1.36", "command": ["no-such-command-here"]}
    pod = _run(jobs, core, namespace, job_manifest(name, [main]))
    terminated = state_of(pod, "main").terminated
    assert terminated.reason == "StartError"
    assert terminated.exit_code == 128
    assert pod.status.phase == "Failed"


def _memory_hog(name: str) -> dict:
    program = "import time\ndata = b'x' * (400 * 2**20)\ntime.sleep(30)\n"
    hog = {
        "name": "main",
        "image": PYTHON_IMAGE,
        "command": ["python", "-c", program],
        "resources": {"limits": {"memory": "64Mi"}},
    }
    return job_manifest(name, [hog])


def test_memory_limit_gives_oomkilled(jobs, core, namespace):
    pod = _run(jobs, core, namespace, _memory_hog(unique_name("oom")))
    terminated = state_of(pod, "main").terminated
    assert (terminated.reason, terminated.exit_code) == ("OOMKilled", 137)


@pytest.mark.fault
def test_memory_watchdog_gives_oomkilled(tmp_path, local):
    with LocalCluster(tmp_path, tls=False, memory_mode="watchdog") as cluster:
        assert cluster.memory_mechanism == "watchdog"
        with kubernetes.config.new_client_from_config(
            config_file=str(cluster.kubeconfig_path)
        ) as api:
            batch, core = kubernetes.client.BatchV1Api(api), kubernetes.client.CoreV1Api(api)
            manifest = _memory_hog("oom-watchdog")
            batch.create_namespaced_job("default", manifest)
            pod = wait_for_pod(core, "default", "oom-watchdog", is_finished)
    terminated = state_of(pod, "main").terminated
    assert (terminated.reason, terminated.exit_code) == ("OOMKilled", 137)


@pytest.mark.fault
def test_path_rewriting_when_no_mount_namespace(tmp_path, local):
    with (
        LocalCluster(tmp_path, mount_mode="rewrite") as cluster,
        kubernetes.config.new_client_from_config(config_file=str(cluster.kubeconfig_path)) as api,
    ):
        batch, core = kubernetes.client.BatchV1Api(api), kubernetes.client.CoreV1Api(api)
        main = container(
            "main",
            "echo data > /share/out.txt; cat /share/out.txt; pwd",
            workingDir="/share",
            volumeMounts=[{"name": "share", "mountPath": "/share"}],
        )
        volumes = [{"name": "share", "emptyDir": {}}]
        batch.create_namespaced_job("default", job_manifest("rewrite", [main], volumes=volumes))
        pod = wait_for_pod(core, "default", "rewrite", is_finished)
        log = _log(core, "default", pod).splitlines()
        events = core.list_namespaced_event(
            "default", field_selector=f"involvedObject.name={pod.metadata.name}"
        )
    assert log[0] == "data"
    assert log[1].startswith(str(tmp_path))
    assert not os.path.exists("/share")
    mounted = [e.message for e in events.items if e.reason == "VolumesMounted"]
    assert mounted
    assert "path rewriting" in mounted[0]


def test_pod_events_say_how_volumes_are_mounted(jobs, core, namespace, local):
    pod = _run(
        jobs, core, namespace, job_manifest(unique_name("events"), [container("main", "true")])
    )
    events = core.list_namespaced_event(
        namespace, field_selector=f"involvedObject.name={pod.metadata.name}"
    )
    reasons = [e.reason for e in events.items]
    assert {"Scheduled", "Started", "VolumesMounted"} <= set(reasons)
    mounted = next(e for e in events.items if e.reason == "VolumesMounted")
    assert f"({local.mount_mode})" in mounted.message or local.mount_mode not in ("root",)


def test_gpu_request_leaves_pod_unschedulable(jobs, core, namespace):
    name = unique_name("gpu")
    main = container("main", "true", resources={"limits": {"nvidia.com/gpu": "1"}})
    jobs(job_manifest(name, [main]))
    pod = wait_for_pod(core, namespace, name, lambda p: bool(p.status.conditions))
    scheduled = next(c for c in pod.status.conditions if c.type == "PodScheduled")
    assert (scheduled.status, scheduled.reason) == ("False", "Unschedulable")
    assert "nvidia.com/gpu" in scheduled.message
    assert pod.status.phase == "Pending"


def test_zero_gpus_runs(jobs, core, namespace):
    main = container("main", "true", resources={"limits": {"nvidia.com/gpu": "0", "cpu": "100m"}})
    pod = _run(jobs, core, namespace, job_manifest(unique_name("nogpu"), [main]))
    assert pod.status.phase == "Succeeded"


def test_run_as_user(jobs, core, namespace, local):
    if os.geteuid() != 0:
        pytest.skip("runAsUser needs the local cluster to run as root")
    main = container(
        "main",
        "id -u; touch /share/file && echo can-write",
        securityContext={"runAsUser": 1000, "runAsGroup": 1000, "allowPrivilegeEscalation": False},
        volumeMounts=[{"name": "share", "mountPath": "/share"}],
    )
    volumes = [{"name": "share", "emptyDir": {}}]
    pod = _run(jobs, core, namespace, job_manifest(unique_name("user"), [main], volumes=volumes))
    assert _log(core, namespace, pod).splitlines() == ["1000", "can-write"]


def test_restart_on_failure_counts_restarts(jobs, batch, core, namespace):
    name = unique_name("restart")
    script = textwrap.dedent(
        """
        if [ -e /share/once ]; then echo second; exit 0; fi
        touch /share/once; echo first; exit 1
        """
    )
    main = container("main", script, volumeMounts=[{"name": "share", "mountPath": "/share"}])
    volumes = [{"name": "share", "emptyDir": {}}]
    manifest = job_manifest(
        name, [main], volumes=volumes, restart_policy="OnFailure", backoffLimit=2
    )
    pod = _run(jobs, core, namespace, manifest)
    status = pod.status.container_statuses[0]
    assert status.restart_count == 1
    assert status.last_state.terminated.exit_code == 1
    assert pod.status.phase == "Succeeded"


def test_service_account_token_is_mounted_unless_disabled(jobs, core, namespace):
    script = "cat /var/run/secrets/kubernetes.io/serviceaccount/namespace; echo"
    pod = _run(
        jobs, core, namespace, job_manifest(unique_name("token"), [container("main", script)])
    )
    assert _log(core, namespace, pod) == f"{namespace}\n"
    assert any(v.name.startswith("kube-api-access-") for v in pod.spec.volumes)
    manifest = job_manifest(
        unique_name("notoken"),
        [container("main", "ls /var/run/secrets/kubernetes.io/serviceaccount || echo none")],
        pod_spec={"automountServiceAccountToken": False},
    )
    pod = _run(jobs, core, namespace, manifest)
    assert _log(core, namespace, pod).splitlines()[-1] == "none"
    assert not pod.spec.volumes


@pytest.mark.fault
def test_user_namespace_mode_mounts_volumes(tmp_path, local):
    try:
        cluster = LocalCluster(tmp_path, mount_mode="userns").start()
    except RuntimeError as error:
        pytest.skip(str(error))
    try:
        with kubernetes.config.new_client_from_config(
            config_file=str(cluster.kubeconfig_path)
        ) as api:
            batch, core = kubernetes.client.BatchV1Api(api), kubernetes.client.CoreV1Api(api)
            core.create_namespaced_secret(
                "default", {"metadata": {"name": "creds"}, "stringData": {"key": "value"}}
            )
            script = (
                "echo hi > /share/x; cat /share/x; cat /etc/creds/key; echo; touch /etc/creds/y"
            )
            main = container(
                "main",
                script,
                volumeMounts=[
                    {"name": "share", "mountPath": "/share"},
                    {"name": "creds", "mountPath": "/etc/creds", "readOnly": True},
                ],
            )
            volumes = [
                {"name": "share", "emptyDir": {}},
                {"name": "creds", "secret": {"secretName": "creds"}},
            ]
            batch.create_namespaced_job("default", job_manifest("userns", [main], volumes=volumes))
            pod = wait_for_pod(core, "default", "userns", is_finished)
            log = _log(core, "default", pod).splitlines()
    finally:
        cluster.stop()
    assert log[:2] == ["hi", "value"]
    assert "Read-only file system" in log[-1]
    assert not os.path.exists("/share")
