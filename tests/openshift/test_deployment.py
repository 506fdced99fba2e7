"""pman started with the processed template's configuration (its Deployment's command and
environment, its service account, the Swift Secret it mounts) runs a job on the local
cluster to a final status, moves a job's input and output through its data routes, and the
Roles grant exactly the Kubernetes calls pman and the publisher make."""

from __future__ import annotations

import io
import json
import tarfile
import uuid

import pytest
import requests

from tests.support.bodies import pfcon_request
from tests.support.names import unique_name
from tests.support.openshift.deployed import DeployedPman, deploy
from tests.support.openshift.rbac import calls_by, granted
from tests.support.openshift.templates import pman_container
from tests.support.swift import delete_container
from tests.support.waiting import eventually

FINAL = {"finishedSuccessfully", "finishedWithError"}
# A processor that reads its input and writes an output file (pfcon's "fs" plugins get the
# output directory as their last argument, which sh -c makes $0).
PROCESSOR = 'echo processed by pman; mkdir -p "$0"; cat /share/incoming/input.txt > "$0/output.txt"'


def processor_request(jid: str, input_dir: str, output_dir: str) -> dict:
    """pfcon's request for a job running PROCESSOR on ``input_dir``."""
    return pfcon_request(
        jid=jid,
        entrypoint=["sh", "-c", PROCESSOR],
        args=[],
        args_path_flags=[],
        input_dir=input_dir,
        output_dir=output_dir,
        env=[],
    )


@pytest.fixture(scope="module")
def pman(kube_cluster, swift_server):
    if kube_cluster.local is None:
        pytest.skip("runs pman's pod as a local process: needs the local cluster")
    with deploy(kube_cluster, swift_server) as deployed:
        yield deployed


@pytest.fixture
def swift_job(swift_server, swift_container):
    """A Swift container with one input object, and pfcon's request for a job on it."""
    connection = swift_server.connection()
    connection.put_container(swift_container)
    connection.put_object(swift_container, "in/input.txt", b"input from swift\n")
    jid = f"openshift-{uuid.uuid4().hex[:8]}"
    body = processor_request(jid, f"{swift_container}/in", f"{swift_container}/out")
    return body, connection


@pytest.fixture
def data_jid(swift_server):
    """A jid whose data lives where pman puts it by default, deleted from Swift after."""
    jid = f"openshift-data-{uuid.uuid4().hex[:8]}"
    yield jid
    delete_container(swift_server.connection(), f"key-{jid}")


def push(pman: DeployedPman, jid: str, files: dict[str, bytes]) -> dict:
    """Upload ``files`` as a job's input through pman's data route, as a tar stream."""
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    response = requests.post(
        f"{pman.url}/api/v1/_data/{jid}/input/",
        data=archive.getvalue(),
        headers={**pman.headers(), "Content-Type": "application/x-tar"},
        timeout=30,
    )
    assert response.status_code == 201, f"{response.text}\n{pman.logs()}"
    return response.json()


def pull(pman: DeployedPman, jid: str) -> dict[str, bytes]:
    """A job's published output through pman's data route: each file of the tar by name."""
    url = f"{pman.url}/api/v1/_data/{jid}/output/?format=tar"
    response = requests.get(url, headers=pman.headers(), timeout=30)
    assert response.status_code == 200, f"{response.text}\n{pman.logs()}"
    with tarfile.open(fileobj=io.BytesIO(response.content)) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def submit(pman: DeployedPman, body: dict) -> dict:
    response = requests.post(f"{pman.url}/api/v1/", json=body, headers=pman.headers(), timeout=30)
    assert response.status_code == 201, response.text
    return response.json()


def wait_final(pman: DeployedPman, jid: str, *, timeout: float = 90) -> dict:
    """Poll the job as pfcon does until its status is final."""

    def final() -> dict | None:
        response = requests.get(f"{pman.url}/api/v1/{jid}/", headers=pman.headers(), timeout=30)
        assert response.status_code == 200, response.text
        job = response.json()
        return job if job["status"] in FINAL else None

    try:
        return eventually(final, timeout=timeout, interval=0.2, what=f"job {jid} finished")
    except AssertionError as error:
        raise AssertionError(f"{error}\n{pman.logs()}") from None


def delete(pman: DeployedPman, jid: str) -> int:
    url = f"{pman.url}/api/v1/{jid}/"
    return requests.delete(url, headers=pman.headers(), timeout=30).status_code


def run_job(pman: DeployedPman, body: dict, *, while_running=None) -> dict:
    """Submit, poll to a final status, delete: what a client does with one job."""
    created = submit(pman, body)
    assert created["status"] == "notstarted"
    try:
        if while_running:
            while_running()
        return wait_final(pman, body["jid"])
    finally:
        assert delete(pman, body["jid"]) == 204


def wait_for_call(audit_log, namespace: str, account: str, call: tuple, *, timeout=60) -> None:
    """Until the audit log shows the service account ``account`` making ``call``."""
    user = f"system:serviceaccount:{namespace}:{account}"
    eventually(
        lambda: call in calls_by(audit_log, namespace).get(user, set()),
        timeout=timeout,
        interval=0.05,
        what=f"{call} in the audit log",
    )


def test_a_job_runs_to_success_and_publishes_its_output(pman, swift_job):
    body, connection = swift_job
    job = run_job(pman, body)
    assert job["status"] == "finishedSuccessfully", job
    assert "processed by pman" in job["logs"]
    container = body["output_dir"].split("/")[0]
    _, output = connection.get_object(container, "out/output.txt")
    assert output == b"input from swift\n"
    response = requests.get(f"{pman.url}/api/v1/{body['jid']}/", headers=pman.headers(), timeout=30)
    assert response.status_code == 404


def test_the_data_routes_reach_swift_with_the_mounted_credentials(pman, data_jid):
    # Without the Secret mounted at SWIFT_CREDENTIALS_FILE these routes answer 503.
    data = b"input pushed through pman\n"
    pushed = push(pman, data_jid, {"input.txt": data})
    assert pushed == {
        "jid": data_jid,
        "input_dir": f"key-{data_jid}/incoming",
        "files": 1,
        "bytes": len(data),
    }
    # pman's own log lines reach the pod's log beside gunicorn's; python-swiftclient's
    # request lines (a 404 here, with the start of the token) do not.
    missing = requests.get(
        f"{pman.url}/api/v1/_data/{data_jid}/output/", headers=pman.headers(), timeout=30
    )
    assert missing.status_code == 404
    logs = pman.logs()
    uploaded = f"uploaded 1 files ({len(data)} bytes) to key-{data_jid}/incoming for job {data_jid}"
    assert uploaded in logs
    assert "X-Auth-Token" not in logs
    assert "REQ: curl" not in logs
    body = processor_request(data_jid, pushed["input_dir"], f"key-{data_jid}/outgoing")
    submit(pman, body)
    try:
        job = wait_final(pman, data_jid)
        assert job["status"] == "finishedSuccessfully", job
        output = pull(pman, data_jid)
    finally:
        assert delete(pman, data_jid) == 204
    assert output["output.txt"] == data
    manifest = json.loads(output[".publisher-manifest.json"])
    assert [item["path"] for item in manifest["files"]] == ["output.txt"]
    # The output stays downloadable once the job is gone.
    assert pull(pman, data_jid) == output


def test_the_api_needs_the_generated_token(pman):
    assert requests.get(f"{pman.url}/api/v1/", timeout=10).status_code == 401
    info = requests.get(f"{pman.url}/api/v1/", headers=pman.headers(), timeout=10)
    assert info.json()["container_env"] == "openshift"


@pytest.mark.parametrize("probe", ["readinessProbe", "livenessProbe"])
def test_the_probes_answer_without_a_token(pman, probe):
    path = pman_container(pman.objects)[probe]["httpGet"]["path"]
    assert requests.get(f"{pman.url}{path}", timeout=10).status_code == 200


def test_the_roles_grant_exactly_the_calls_pman_and_the_publisher_make(
    pman, swift_job, kube_cluster, shared_dir
):
    body, _ = swift_job
    # Every path of the API that reaches Kubernetes: submit, status with logs, the job
    # list, a status and a delete of an unknown job, delete. The publish sidecar lists its
    # pod and, the processor still running, watches it: the processor waits for a file the
    # test creates once the watch has begun.
    release = shared_dir / "release"
    body["entrypoint"] = [
        "sh",
        "-c",
        f"while [ ! -e {release} ]; do sleep 0.05; done; {PROCESSOR}",
    ]

    def release_after_the_watch() -> None:
        account = "pman-publisher"
        wait_for_call(kube_cluster.audit_log, pman.namespace, account, ("", "pods", "watch"))
        # The data route looks up the job and its pods to say why there is no output yet.
        url = f"{pman.url}/api/v1/_data/{body['jid']}/output/"
        early = requests.get(url, headers=pman.headers(), timeout=30)
        assert early.status_code == 409, early.text
        release.touch()

    job = run_job(pman, body, while_running=release_after_the_watch)
    assert job["status"] == "finishedSuccessfully", job
    assert requests.get(f"{pman.url}/api/v1/_jobs/", headers=pman.headers(), timeout=30).ok
    assert (
        requests.get(
            f"{pman.url}/api/v1/no-such-job/", headers=pman.headers(), timeout=30
        ).status_code
        == 404
    )
    assert delete(pman, "no-such-job") == 404

    used = calls_by(kube_cluster.audit_log, pman.namespace)
    allowed = granted(pman.objects)
    assert set(used) <= set(allowed), (
        f"calls by accounts without a Role: {set(used) - set(allowed)}"
    )
    for account, rules in allowed.items():
        calls = used.get(account, set())
        assert calls - rules == set(), f"{account} calls what its Role does not grant"
        assert rules - calls == set(), f"{account}'s Role grants what it never calls"


# -- the same template with SWIFT_POD_CREDENTIALS=tempurl --------------------------------------


@pytest.fixture(scope="module")
def tempurl_pman(kube_cluster, swift_server):
    """pman deployed so that its job pods hold temporary URLs, not the Swift Secret."""
    if kube_cluster.local is None:
        pytest.skip("runs pman's pod as a local process: needs the local cluster")
    parameters = {"SWIFT_POD_CREDENTIALS": "tempurl"}
    with deploy(kube_cluster, swift_server, parameters=parameters) as deployed:
        yield deployed


def test_with_tempurl_a_job_runs_without_the_secret_and_publishes_its_output(
    tempurl_pman, swift_job, shared_dir
):
    pman = tempurl_pman
    body, connection = swift_job
    release = shared_dir / "release"
    body["entrypoint"] = ["sh", "-c", f"while [ ! -e {release} ]; do sleep 0.05; done; {PROCESSOR}"]
    seen: list = []

    def look_at_the_pod() -> None:
        selector = f"pman.chrisproject.org/jid={body['jid']}"

        def pod():
            pods = pman.core.list_namespaced_pod(pman.namespace, label_selector=selector).items
            return pods[0] if pods else None

        seen.append(eventually(pod, timeout=60, what="the job's pod"))
        release.touch()

    job = run_job(pman, body, while_running=look_at_the_pod)
    assert job["status"] == "finishedSuccessfully", f"{job}\n{pman.logs()}"
    (pod,) = seen
    assert not [volume.name for volume in pod.spec.volumes if volume.secret], pod.spec.volumes
    words = {
        c.name: " ".join((c.command or []) + (c.args or []))
        for c in pod.spec.init_containers + pod.spec.containers
    }
    assert "temp_url_sig=" in words["stage-in"]
    assert "temp_url_sig=" in words["publish"]
    assert "temp_url_sig=" not in words["processor"]
    container = body["output_dir"].split("/")[0]
    output = connection.get_object(container, "out/output.txt")[1]
    assert output == b"input from swift\n"
    assert "job pods reach Swift through temporary URLs pman signs" in pman.logs()


# -- the same template with STORAGE_TYPE=kubernetes_pvc --------------------------------------


@pytest.fixture(scope="module")
def pvc_pman(kube_cluster, swift_server):
    """pman deployed for a claim pfcon shares: no Swift Secret, no publisher account."""
    if kube_cluster.local is None:
        pytest.skip("runs pman's pod as a local process: needs the local cluster")
    namespace = unique_name("pman-pvc")
    claim = "chris-storebase"
    parameters = {"STORAGE_TYPE": "kubernetes_pvc", "VOLUME_NAME": claim}
    with deploy(kube_cluster, swift_server, parameters=parameters, namespace=namespace) as deployed:
        yield deployed, kube_cluster.local.claim_directory(namespace, claim)


def test_in_the_pvc_mode_a_job_reads_and_writes_the_claim_the_client_shares(pvc_pman):
    pman, storebase = pvc_pman
    info = requests.get(f"{pman.url}/api/v1/", headers=pman.headers(), timeout=10).json()
    assert info["storage_type"] == "kubernetes_pvc"
    jid = f"openshift-pvc-{uuid.uuid4().hex[:8]}"
    incoming = storebase / f"key-{jid}" / "incoming"  # what pfcon writes before it submits
    incoming.mkdir(parents=True)
    (incoming / "input.txt").write_bytes(b"input from the claim\n")
    body = processor_request(jid, f"key-{jid}/incoming", f"key-{jid}/outgoing")
    job = run_job(pman, body)
    assert job["status"] == "finishedSuccessfully", job
    assert "processed by pman" in job["logs"]
    assert (storebase / f"key-{jid}" / "outgoing" / "output.txt").read_bytes() == (
        b"input from the claim\n"
    )
    early = requests.get(
        f"{pman.url}/api/v1/_data/{jid}/output/", headers=pman.headers(), timeout=30
    )
    assert early.status_code == 409
    assert "STORAGE_TYPE=kubernetes_pvc" in early.json()["message"]


def test_in_the_pvc_mode_pmans_role_grants_exactly_its_calls_and_no_publisher_runs(
    pvc_pman, kube_cluster
):
    pman, storebase = pvc_pman
    jid = f"openshift-pvc-{uuid.uuid4().hex[:8]}"
    (storebase / f"key-{jid}" / "incoming").mkdir(parents=True)
    (storebase / f"key-{jid}" / "incoming" / "input.txt").write_bytes(b"x\n")
    body = processor_request(jid, f"key-{jid}/incoming", f"key-{jid}/outgoing")
    job = run_job(pman, body)
    assert job["status"] == "finishedSuccessfully", job
    assert requests.get(f"{pman.url}/api/v1/_jobs/", headers=pman.headers(), timeout=30).ok
    unknown = requests.get(f"{pman.url}/api/v1/no-such-job/", headers=pman.headers(), timeout=30)
    assert unknown.status_code == 404
    assert delete(pman, "no-such-job") == 404

    # Every path of the API that reaches Kubernetes, as in Swift storage: no account but
    # pman's calls anything, and pman's Role grants exactly what it calls.
    used = calls_by(kube_cluster.audit_log, pman.namespace)
    allowed = granted(pman.objects)
    assert set(allowed) == {f"system:serviceaccount:{pman.namespace}:pman"}
    assert set(used) == set(allowed), (
        f"calls by accounts without a Role: {set(used) - set(allowed)}"
    )
    for account, rules in allowed.items():
        assert used[account] == rules, f"{account}: {used[account] ^ rules}"
