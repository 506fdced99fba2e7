"""`publisher publish` as the sidecar of a real pod on the cluster, and its watch."""

from __future__ import annotations

import json
import signal
import time

import kubernetes
import pytest
from kubernetes.client.exceptions import ApiException

from publisher.kube import PodWatcher
from publisher.manifest import MANIFEST_NAME
from tests.support.names import unique_name
from tests.support.podspec import job_pod_manifest
from tests.support.publisher import start_publish, wait_until_preparing
from tests.support.waiting import eventually


@pytest.fixture
def run_job(jobs, core, kube_cluster):
    """Create a Job, wait until it has finished, return (pod, logs by container)."""

    def run(manifest: dict, *, timeout: float = 90) -> tuple:
        ns = kube_cluster.namespace
        jobs(manifest)

        def finished_pod():
            pods = core.list_namespaced_pod(
                ns, label_selector=f"job-name={manifest['metadata']['name']}"
            ).items
            return pods[0] if pods and pods[0].status.phase in ("Succeeded", "Failed") else None

        pod = eventually(finished_pod, timeout=timeout, interval=0.2, what="the job finished")
        logs = {}
        for name in ("stage-in", "processor", "publish"):
            try:
                logs[name] = core.read_namespaced_pod_log(pod.metadata.name, ns, container=name)
            except ApiException:
                logs[name] = ""
        return pod, logs

    return run


def container_exit(pod, name: str) -> int:
    for status in pod.status.container_statuses or []:
        if status.name == name:
            return status.state.terminated.exit_code
    raise AssertionError(f"no status for {name}")


PROCESSOR = (
    "mkdir -p /share/outgoing/sub && cp /share/incoming/input.txt /share/outgoing/copy.txt && "
    "echo result > /share/outgoing/sub/result.txt && "
    "ln -s /etc/swift/swift-credentials.cfg /share/outgoing/creds && "
    "ln -s /etc/passwd /share/outgoing/passwd && exit 3"
)


def test_publish_sidecar_uploads_after_the_processor_fails(
    run_job, credentials_secret, swift_server, swift_container
):
    conn = swift_server.connection()
    conn.put_container(swift_container)
    conn.put_object(swift_container, "in/input.txt", b"staged in")
    manifest = job_pod_manifest(
        unique_name("publish"),
        secret=credentials_secret,
        container=swift_container,
        processor_script=PROCESSOR,
    )
    pod, logs = run_job(manifest)
    assert container_exit(pod, "processor") == 3
    assert container_exit(pod, "publish") == 0, logs["publish"]

    _, listing = conn.get_container(swift_container, prefix="out/")
    assert sorted(o["name"] for o in listing) == [
        f"out/{MANIFEST_NAME}",
        "out/copy.txt",
        "out/sub/result.txt",
    ]
    assert conn.get_object(swift_container, "out/copy.txt")[1] == b"staged in"
    _, body = conn.get_object(swift_container, f"out/{MANIFEST_NAME}")
    published = json.loads(body)
    assert published["processor"]["exit_code"] == 3
    assert published["processor"]["reason"] == "Error"
    started, finished = published["processor"]["started_at"], published["processor"]["finished_at"]
    assert "" < started <= finished  # Kubernetes' times: whole seconds
    assert {s["path"] for s in published["skipped"]} == {"creds", "passwd"}
    assert swift_server.key.encode() not in body
    summary = json.loads(logs["publish"].strip().splitlines()[-1])
    assert summary["status"] == "ok"
    assert summary["kube_requests"] <= 2


def test_publish_on_success_skips_a_failed_processor(
    run_job, credentials_secret, swift_server, swift_container
):
    swift_server.connection().put_container(swift_container)
    manifest = job_pod_manifest(
        unique_name("publish-success"),
        secret=credentials_secret,
        container=swift_container,
        processor_script="mkdir -p /share/outgoing && echo x > /share/outgoing/x && exit 1",
        publish_args=["--publish-on", "success"],
        stage_in=False,
    )
    pod, logs = run_job(manifest)
    assert container_exit(pod, "publish") == 0, logs["publish"]
    assert swift_server.connection().get_container(swift_container)[1] == []
    assert json.loads(logs["publish"].strip().splitlines()[-1])["published"] is False


def test_stage_in_fails_clearly_on_an_empty_input(run_job, credentials_secret, swift_container):
    manifest = job_pod_manifest(
        unique_name("stage-in-empty"),
        secret=credentials_secret,
        container=swift_container,
        processor_script="exit 0",
    )
    pod, logs = run_job(manifest)
    stage = pod.status.init_container_statuses[0].state.terminated
    assert stage.exit_code == 6
    assert "does not exist" in logs["stage-in"]


@pytest.fixture
def sleeper(job_pod):
    """Start a Job whose container `processor` sleeps then exits 0; return its pod name."""

    def start(seconds: float) -> str:
        command = ["sleep", str(seconds)]
        return job_pod(
            "sleeper",
            {
                "restartPolicy": "Never",
                "containers": [{"name": "processor", "image": "busybox:1.36", "command": command}],
            },
        )

    return start


def test_watch_resumes_when_the_stream_ends(kube_cluster, sleeper):
    pod = sleeper(2)
    with kube_cluster.api_client() as api:
        watcher = PodWatcher(api, kube_cluster.namespace, pod, watch_timeout=1)
        termination = watcher.wait_for_termination("processor")
    assert (termination.exit_code, termination.reason) == (0, "Completed")
    assert watcher.requests >= 3  # a list, then a watch resumed at least once


def test_watch_lists_again_after_410(kube_cluster, sleeper):
    if kube_cluster.local is None:
        pytest.skip("needs the local cluster to expire resourceVersions")
    pod = sleeper(1)
    with kube_cluster.api_client() as api:
        core = kubernetes.client.CoreV1Api(api)
        old = core.list_namespaced_pod(kube_cluster.namespace).metadata.resource_version
        marker = unique_name("bump")
        core.create_namespaced_config_map(kube_cluster.namespace, {"metadata": {"name": marker}})
        core.delete_namespaced_config_map(marker, kube_cluster.namespace)
        kube_cluster.local.compact()  # `old` is now older than anything the API keeps
        watcher = PodWatcher(api, kube_cluster.namespace, pod)
        termination = watcher.wait_for_termination("processor", resource_version=old)
    assert termination.exit_code == 0
    assert watcher.requests >= 2  # the expired watch, then a fresh list
    assert watcher.relists == 1


def test_a_pod_that_fails_before_the_container_starts_ends_the_wait(kube_cluster, job_pod):
    # The pod's deadline passes during its init container: the processor never starts.
    pod = job_pod(
        "never-started",
        {
            "restartPolicy": "Never",
            "activeDeadlineSeconds": 1,
            "initContainers": [
                {"name": "init", "image": "busybox:1.36", "command": ["sleep", "60"]}
            ],
            "containers": [{"name": "processor", "image": "busybox:1.36", "command": ["true"]}],
        },
    )
    with kube_cluster.api_client() as api:
        watcher = PodWatcher(api, kube_cluster.namespace, pod, deadline=time.monotonic() + 30)
        termination = watcher.wait_for_termination("processor")
    assert (termination.exit_code, termination.reason) == (-1, "DeadlineExceeded")
    assert termination.message == "Pod was active on the node longer than the specified deadline"


def test_watch_of_a_missing_pod_fails_clearly(kube_cluster):
    from publisher.errors import WaitFailed

    with kube_cluster.api_client() as api:
        watcher = PodWatcher(api, kube_cluster.namespace, "no-such-pod")
        with pytest.raises(WaitFailed, match="does not exist"):
            watcher.wait_for_termination("processor")


def test_publish_ends_promptly_on_sigterm_while_waiting(
    kube_cluster, sleeper, swift_server, swift_container, tmp_path
):
    pod = sleeper(300)
    process = start_publish(pod, kube_cluster, swift_server, tmp_path, swift_container)
    wait_until_preparing(swift_server, swift_container, process)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=10)
    assert process.returncode == 143, err
    assert json.loads(out)["status"] == "interrupted"
    assert swift_server.connection().get_container(swift_container)[1] == []
