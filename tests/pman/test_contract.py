"""The pman v6 contract over real HTTP: pman on the test cluster, pods that really run,
data in a real Swift or in a storeBase on this machine. Each table of CONTRACT.md has its
rows checked here or, for rows that need no cluster (400/405/415/413, the 308s), in
``test_http.py``.

The contract is the same in every storage mode (STORAGE_TYPE): the tests that do not depend
on Swift run with each of them (the ``storage`` fixture); those about staging in from and
publishing to Swift run with Swift only (``SWIFT_ONLY``). How pfcon's own storage modes use
the volume modes is in ``test_pfcon5_storebase.py``.
"""

from __future__ import annotations

import json
import re
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler

import kubernetes
import pytest
import requests
from kubernetes.utils import parse_quantity

from pman.jobspec import JID_LABEL
from pman.settings import Settings
from tests.support.bodies import pfcon_request
from tests.support.fake_api import fake_api
from tests.support.names import unique_name
from tests.support.pman_cluster import (
    COPY_INPUT,
    kubeconfig_with_token,
    publisher_requests,
    read_job,
    running_pman,
)
from tests.support.pman_server import pman_server
from tests.support.rest import FINISHED, job_pods
from tests.support.storage import MODES, storage_for
from tests.support.waiting import eventually

FAIL = "import sys; print('about to fail', file=sys.stderr); sys.exit(3)"
HOG = "import time; data = b'x' * (512 << 20); time.sleep(30)"
CHATTY = (
    "import sys\n"
    "for i in range(1500): print(f'line {i}')\n"
    "sys.stdout.flush(); sys.stdout.buffer.write(b'bad \\xff\\xfe bytes \\xc3\\xa9t\\xc3\\xa9\\n')"
)
SLEEP = "import time; print('sleeping', flush=True); time.sleep(300)"
# For the tests about Swift's stage-in and publish container.
SWIFT_ONLY = pytest.mark.parametrize("storage", ["swift"], indirect=True)

# Leaves a file where the output directory was: there is nothing the publisher can publish.
NO_OUTPUT_DIRECTORY = (
    "import shutil; shutil.rmtree('/share/outgoing'); "
    "open('/share/outgoing', 'w').write('not a directory')"
)


@pytest.fixture(scope="module", params=MODES)
def storage(request, kube_cluster, swift_server, tmp_path_factory):
    """Two input files where the storage mode keeps data: Swift, or a storeBase."""
    scratch = tmp_path_factory.mktemp("storebase")
    with storage_for(
        request.param, kube_cluster, swift_server=swift_server, scratch=scratch
    ) as where:
        yield where


@pytest.fixture(scope="module")
def pman(kube_cluster, secret, storage):
    with running_pman(kube_cluster, swift_secret_name=secret, **storage.settings) as handle:
        yield handle


def python_job(pman, storage, script, **changes):
    """Submit a job whose processor is ``python3 -c script``."""
    jid = changes.pop("jid", unique_name("job"))
    body = {
        "jid": jid,
        "image": "python:3.11",
        "entrypoint": ["python3", "-c", script],
        "args": ["--msg", "hi", "--in", "ignored"],
        "args_path_flags": ["--in"],
        "input_dir": storage.input_dir,
        "output_dir": storage.output_dir(jid),
        **changes,
    }
    return pman.submit(**body)


@pytest.fixture(scope="module")
def jobs(pman, storage):
    """Every long-ish job of this module, submitted at once so that they run side by side."""
    chatty = python_job(pman, storage, CHATTY)
    submitted = {
        "success": python_job(pman, storage, COPY_INPUT, number_of_workers="1", cpu_limit="500"),
        "failure": python_job(pman, storage, FAIL),
        "oom": python_job(pman, storage, HOG, memory_limit=64),
        "missing": python_job(pman, storage, COPY_INPUT, type="ds", input_dir=storage.missing_dir),
        "chatty": chatty,
        "workers": python_job(pman, storage, COPY_INPUT, number_of_workers=2),
    }
    if storage.mode == "swift":
        # Nothing the publisher can publish: the publish fails.
        submitted["publish"] = python_job(pman, storage, NO_OUTPUT_DIRECTORY)
    return submitted


# --- Routes ---------------------------------------------------------------------------


def test_server_info_and_readiness_probe(pman, storage):
    response = requests.get(f"{pman.url}/api/v1/", timeout=10)
    assert response.status_code == 200
    assert set(response.json()) == {"server_version", "container_env", "storage_type"}
    assert response.json()["storage_type"] == storage.mode
    assert all(isinstance(value, str) for value in response.json().values())
    assert requests.head(f"{pman.url}/api/v1/", timeout=10).status_code == 200
    assert requests.get(f"{pman.url}/readyz", timeout=10).status_code == 200


def test_pfcon_request_with_numeric_strings_gets_201_and_the_job_object(pman):
    jid = unique_name("pfcon")
    body = pfcon_request(
        jid=jid,
        number_of_workers="1",
        cpu_limit="1000",
        memory_limit="200",
        gpu_limit="0",
        input_dir=f"key-{jid}/incoming",
        output_dir=f"key-{jid}/outgoing",
    )
    response = requests.post(f"{pman.url}/api/v1/", json=body, timeout=30)
    pman.jids.append(jid)
    assert response.status_code == 201
    assert response.json() == {
        "jid": jid,
        "image": "fnndsc/pl-simplefsapp",
        "cmd": "python3 /usr/local/bin/simplefsapp --saveinputmeta --saveoutputmeta "
        "--dir /share/incoming /share/outgoing",
        "status": "notstarted",
        "message": "waiting for the job's pod to be created",
        "timestamp": "",
        "logs": "",
        "phase": "pending",
        "reason": "",
    }
    got = pman.get(jid)
    assert got.status_code == 200
    assert got.json()["status"] in ("notstarted", "started", *FINISHED)
    job = read_job(pman.cluster, jid)
    assert job["metadata"]["labels"]["pman.chrisproject.org/auid"] == "cube"
    processor = job["spec"]["template"]["spec"]["containers"][0]
    limits = {
        name: parse_quantity(value) for name, value in processor["resources"]["limits"].items()
    }
    assert limits == {"cpu": 1, "memory": 200 * 2**20}
    assert processor["env"] == [{"name": "CHRIS_JID", "value": "chris-jid-42"}]


@pytest.mark.parametrize(
    "changes",
    [{"env": None}, {"args_path_flags": []}, {"input_dir": None, "output_dir": None}],
    ids=["no-env", "no-path-flags", "no-dirs"],
)
def test_pfcon_variants_are_accepted(pman, changes):
    jid = unique_name("variant")
    job = pman.submit(**{"jid": jid, **changes})
    assert job["jid"] == jid
    assert pman.get(jid).json()["jid"] == jid
    if "input_dir" in changes:
        annotations = read_job(pman.cluster, jid)["metadata"]["annotations"]
        assert annotations["pman.chrisproject.org/input-dir"] == f"key-{jid}/incoming"
        assert annotations["pman.chrisproject.org/output-dir"] == f"key-{jid}/outgoing"


def test_a_leading_slash_of_the_jid_is_dropped(pman):
    jid = unique_name("slash")
    assert pman.submit(jid=f"/{jid}")["jid"] == jid
    assert pman.get(jid).json()["jid"] == jid


def test_delete_answers_204_then_the_job_is_gone_and_its_jid_free(pman, storage):
    job = python_job(pman, storage, SLEEP)
    jid = job["jid"]
    pman.wait(jid, lambda j: j["phase"] == "running" and "sleeping" in j["logs"])
    before = pman.kube_requests()
    for _ in range(5):
        assert "sleeping" in pman.get(jid).json()["logs"]
    after = pman.kube_requests()
    spent = {op: n - before.get(op, 0) for op, n in after.items() if not op.startswith("watch")}
    assert {op: n for op, n in spent.items() if n} == {"get pods/log": 5}  # one per GET
    processes = pman.cluster.local.container_pids() if pman.cluster.local else {}
    assert any(pod.startswith(jid) for _, pod, _ in processes)
    response = pman.delete(jid)
    assert (response.status_code, response.content) == (204, b"")
    assert pman.get(jid).status_code == 404
    assert pman.delete(jid).status_code == 404
    eventually(lambda: job_pods(pman.cluster, jid) == [], timeout=30, what="the pods gone")
    if pman.cluster.local:
        assert not any(pod.startswith(jid) for _, pod, _ in pman.cluster.local.container_pids())
    assert python_job(pman, storage, SLEEP, jid=jid)["status"] == "notstarted"
    assert pman.delete(jid).status_code == 204


# --- POST body and the command ----------------------------------------------------------


def test_the_command_is_built_from_entrypoint_args_flags_and_type(pman, jobs):
    job = pman.get(jobs["success"]["jid"]).json()
    assert job["cmd"] == f"python3 -c {COPY_INPUT} --msg hi --in /share/incoming /share/outgoing"


def test_ds_command_ends_with_both_directories(pman, storage):
    job = python_job(pman, storage, COPY_INPUT, type="ds", args=[], args_path_flags=[])
    assert job["cmd"].endswith(" /share/incoming /share/outgoing")


# --- The job object and status values ----------------------------------------------------


def test_a_successful_job_goes_through_every_status_to_finished_successfully(pman, jobs, storage):
    jid = jobs["success"]["jid"]
    final, seen = pman.wait(jid)
    statuses = [job["status"] for job in seen]
    assert "undefined" not in statuses
    order = {"notstarted": 0, "started": 1, "finishedSuccessfully": 2}
    assert [order[s] for s in statuses] == sorted(order[s] for s in statuses)
    assert final["status"] == "finishedSuccessfully"
    assert (final["phase"], final["reason"], final["message"]) == ("done", "", "finished")
    assert datetime.fromisoformat(final["timestamp"]).tzinfo is not None
    assert all(job["timestamp"] == "" for job in seen if job["status"] not in FINISHED)
    assert "args: --msg hi --in /share/incoming /share/outgoing" in final["logs"]
    assert "env: chris-jid-42" in final["logs"]
    assert {"a.txt", "sub/b.txt"} <= storage.outputs(jid)


def test_get_has_no_side_effects(pman, jobs):
    jid = jobs["success"]["jid"]
    pman.wait(jid)
    before = read_job(pman.cluster, jid)["metadata"]["resourceVersion"]
    writes_before = _writes(pman.kube_requests())
    first, second = pman.get(jid).json(), pman.get(jid).json()
    assert first == second
    assert read_job(pman.cluster, jid)["metadata"]["resourceVersion"] == before
    assert _writes(pman.kube_requests()) == writes_before


def _writes(requests_by_operation: dict[str, int]) -> dict[str, int]:
    return {
        op: n
        for op, n in requests_by_operation.items()
        if op.split()[0] in ("create", "delete", "patch", "update")
    }


def test_a_failing_processor_is_finished_with_error_and_its_output_in_the_logs(pman, jobs):
    final, seen = pman.wait(jobs["failure"]["jid"])
    assert (final["status"], final["reason"]) == ("finishedWithError", "ProcessorFailed")
    assert final["message"] == "the processor exited with code 3"
    assert "about to fail" in final["logs"]
    assert final["timestamp"]
    assert "undefined" not in {job["status"] for job in seen}


def test_out_of_memory_is_reported_in_words(pman, jobs):
    final, _ = pman.wait(jobs["oom"]["jid"])
    assert (final["status"], final["reason"]) == ("finishedWithError", "OOMKilled")
    assert "ran out of memory and was killed (OOMKilled; its limit is 64Mi)" in final["message"]


def test_missing_input_fails_and_says_so(pman, jobs, storage):
    final, _ = pman.wait(jobs["missing"]["jid"])
    assert (final["status"], final["reason"]) == ("finishedWithError", "InputMissing")
    assert storage.missing_words in final["message"]
    assert final["logs"] == f"The processor did not run: {final['message']}."


@pytest.mark.fault
def test_a_job_that_ends_before_its_pods_watch_says_how_still_has_the_pods_reason(pman, storage):
    # pman follows Jobs and pods in two watches, in no order between them. Here the pods'
    # falls behind, so the Job's failure (BackoffLimitExceeded) is seen first.
    if pman.cluster.local is None:
        pytest.skip("holds back the local cluster's watch events")
    assert pman.app.extensions["pman"].jobs.cache.wait_synced(30)
    jid = unique_name("lag")
    with pman.cluster.local.watch_lag("pods", {JID_LABEL: jid}):
        python_job(pman, storage, COPY_INPUT, jid=jid, type="ds", input_dir=storage.missing_dir)
        final, _ = pman.wait(jid)
    assert (final["status"], final["reason"]) == ("finishedWithError", "InputMissing")
    assert storage.missing_words in final["message"]
    assert final["logs"] == f"The processor did not run: {final['message']}."


def test_a_failed_job_whose_pods_are_gone_asks_for_them_once(pman, storage):
    jid = python_job(pman, storage, COPY_INPUT, type="ds", input_dir=storage.missing_dir)["jid"]
    pman.wait(jid)
    with pman.cluster.api_client() as api:
        core = kubernetes.client.CoreV1Api(api)
        for pod in job_pods(pman.cluster, jid):
            core.delete_namespaced_pod(pod.metadata.name, pman.cluster.namespace)
    cache = pman.app.extensions["pman"].jobs.cache
    eventually(
        lambda: not (cache.lookup(jid) or (None, [None]))[1],
        timeout=30,
        what="the pods' deletion reaching pman",
    )
    before = pman.kube_requests()
    for _ in range(5):
        assert pman.get(jid).json()["status"] == "finishedWithError"
    after = pman.kube_requests()
    spent = {op: n - before.get(op, 0) for op, n in after.items() if not op.startswith("watch")}
    assert {op: n for op, n in spent.items() if n} == {"list pods": 1}


@SWIFT_ONLY
def test_publish_failure_is_finished_with_error(pman, jobs):
    final, seen = pman.wait(jobs["publish"]["jid"])
    assert (final["status"], final["reason"]) == ("finishedWithError", "PublishFailed")
    assert "publishing the output to Swift failed" in final["message"]
    assert "finishedSuccessfully" not in {job["status"] for job in seen}


def test_logs_are_the_last_lines_decoded_with_replacement(pman, jobs):
    final, _ = pman.wait(jobs["chatty"]["jid"])
    logs = final["logs"]
    assert not logs.startswith(("b'", 'b"'))
    lines = logs.splitlines()
    assert len(lines) == 1000
    assert lines[0] == "line 501"
    assert lines[-1] == "bad \ufffd\ufffd bytes été"


LONG_LINES = "for i in range(1500): print(f'line {i} ' + 'x' * 90)"
ONE_HUGE_LINE = "import sys; print('start'); sys.stdout.write('y' + '\\u00e9' * 100000)"


def cached_log_bytes(handle) -> float:
    text = requests.get(f"{handle.url}/metrics", timeout=10).text
    found = re.search(r"^pman_cached_log_bytes (\S+)", text, re.MULTILINE)
    assert found is not None, "no pman_cached_log_bytes in /metrics"
    return float(found.group(1))


@SWIFT_ONLY
def test_logs_are_bounded_in_bytes_with_the_cut_said_and_dropped_at_delete(
    kube_cluster, storage, secret
):
    limit = 64 << 10
    settings = {"job_logs_max_bytes": limit, "status_cache": False, "swift_secret_name": secret}
    with running_pman(kube_cluster, **settings) as small:
        many = python_job(small, storage, LONG_LINES, type="fs")["jid"]
        huge = python_job(small, storage, ONE_HUGE_LINE, type="fs")["jid"]
        # The last lines that fit, and what was left out said first.
        logs = small.wait(many)[0]["logs"]
        assert len(logs.encode()) <= limit + 200
        assert logs.startswith("[pman: earlier lines left out: the last 1000 lines (JOB_LOGS_TAIL)")
        assert logs.endswith("line 1499 " + "x" * 90 + "\n")
        # A last line too long even alone: its first bytes, cut between two characters.
        logs = small.wait(huge)[0]["logs"]
        assert len(logs.encode()) <= limit + 300
        assert logs.splitlines()[1].startswith("y\u00e9\u00e9")
        assert "\ufffd" not in logs
        assert logs.endswith(
            "[pman: cut here, at 65536 bytes (JOB_LOGS_MAX_BYTES); the log goes on]\n"
        )
        # Ended processors' logs are kept, and dropped with their jobs.
        assert cached_log_bytes(small) > limit
        assert small.delete(many).status_code == small.delete(huge).status_code == 204
        assert cached_log_bytes(small) == 0


def test_several_workers_run_as_one_job(pman, jobs):
    jid = jobs["workers"]["jid"]
    final, _ = pman.wait(jid)
    assert final["status"] == "finishedSuccessfully"
    spec = read_job(pman.cluster, jid)["spec"]
    assert (spec["parallelism"], spec["completions"]) == (2, 2)


def test_logs_before_the_processor_runs_are_a_sentence(kube_cluster):
    # A Swift Secret that does not exist keeps the pod waiting, as on a real node.
    with running_pman(kube_cluster, swift_secret_name=unique_name("absent")) as waiting:
        jid = waiting.submit()["jid"]
        job, _ = waiting.wait(
            jid, lambda j: j["message"] != "waiting for the job's pod to be created"
        )
        assert job["status"] == "notstarted"
        assert job["logs"].startswith("The processor has not started yet: ")
        assert job["logs"].endswith(".")


def test_deadline_is_reported_in_words_and_remove_jobs_no_keeps_the_job(
    kube_cluster, secret, storage
):
    with running_pman(
        kube_cluster,
        swift_secret_name=secret,
        job_deadline_seconds=2,
        remove_jobs=False,
        **storage.settings,
    ) as short:
        jid = python_job(short, storage, SLEEP)["jid"]
        final, _ = short.wait(jid)
        assert (final["status"], final["reason"]) == ("finishedWithError", "DeadlineExceeded")
        assert (
            final["message"] == "the job ran longer than its deadline of 2 seconds and was stopped"
        )
        assert short.delete(jid).status_code == 204
        assert short.get(jid).status_code == 200


PARTIAL = (
    "import sys, time; open(sys.argv[-1] + '/partial.txt', 'w').write('partial'); "
    "print('written', flush=True); time.sleep(300)"
)


@SWIFT_ONLY
def test_a_job_stopped_by_its_deadline_still_publishes_what_it_wrote(kube_cluster, secret, storage):
    if kube_cluster.audit_log is None:
        pytest.skip("needs the local cluster's audit log to see the publisher watching")
    with running_pman(kube_cluster, swift_secret_name=secret, job_grace_seconds=20) as short:
        jid = python_job(short, storage, PARTIAL)["jid"]
        short.wait(jid, lambda j: "written" in j["logs"])
        pod = job_pods(kube_cluster, jid)[0].metadata.name
        eventually(  # it is watching once it listed
            lambda: publisher_requests(kube_cluster, pod) > 0,
            timeout=30,
            what="the publish container asking the API",
        )
        with kube_cluster.api_client() as api:
            kubernetes.client.BatchV1Api(api).patch_namespaced_job(
                jid, kube_cluster.namespace, {"spec": {"activeDeadlineSeconds": 1}}
            )
        final, _ = short.wait(jid)
        assert (final["status"], final["reason"]) == ("finishedWithError", "DeadlineExceeded")
        connection, bucket = storage.swift, storage.key
        manifest = f"out-{jid}/.publisher-manifest.json"
        deadline = time.monotonic() + 30
        while manifest not in {o["name"] for o in connection.get_container(bucket)[1]}:
            assert time.monotonic() < deadline, "nothing was published"
            time.sleep(0.2)
    assert connection.get_object(bucket, f"out-{jid}/partial.txt")[1] == b"partial"
    processor = json.loads(connection.get_object(bucket, manifest)[1])["processor"]
    assert processor["exit_code"] == 143
    assert processor["pod_ending"] == {"why": "deleted", "grace_period_seconds": 20}


# --- Errors ----------------------------------------------------------------------------


def test_unknown_jid_is_404(pman):
    jid = unique_name("never")
    for response in (pman.get(jid), pman.delete(jid)):
        assert response.status_code == 404
        assert jid in response.json()["message"]


def test_a_job_pman_did_not_create_is_not_its_to_report_or_delete(pman):
    name = unique_name("foreign")
    foreign = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "suspend": True,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "c", "image": "busybox", "command": ["true"]}],
                }
            },
        },
    }
    with pman.cluster.api_client() as api:
        batch = kubernetes.client.BatchV1Api(api)
        batch.create_namespaced_job(pman.cluster.namespace, foreign)
        try:
            assert pman.get(name).status_code == 404
            assert pman.delete(name).status_code == 404
            assert batch.read_namespaced_job(name, pman.cluster.namespace).metadata.name == name
        finally:
            batch.delete_namespaced_job(
                name, pman.cluster.namespace, propagation_policy="Background"
            )


def test_posting_an_existing_jid_is_409(pman, storage):
    jid = python_job(pman, storage, FAIL)["jid"]
    body = pfcon_request(jid=jid)
    response = requests.post(f"{pman.url}/api/v1/", json=body, timeout=30)
    assert response.status_code == 409
    assert jid in response.json()["message"]


def test_rejected_credentials_are_403_naming_the_operation(kube_cluster, tmp_path):
    kubeconfig = kubeconfig_with_token(kube_cluster, tmp_path, "not-a-valid-token")
    settings = Settings(
        kubeconfig=str(kubeconfig), job_namespace=kube_cluster.namespace, status_cache=False
    )
    with pman_server(settings) as (url, _):
        response = requests.post(
            f"{url}/api/v1/", json=pfcon_request(jid=unique_name("x")), timeout=30
        )
        assert response.status_code == 403
        assert "credentials to create jobs" in response.json()["message"]
        response = requests.get(f"{url}/api/v1/some-job/", timeout=30)
        assert response.status_code == 403
        assert "credentials to get jobs" in response.json()["message"]


FORBIDDEN = (
    'jobs.batch is forbidden: User "system:serviceaccount:chris:pman" cannot create resource '
    '"jobs" in API group "batch" in the namespace "default"'
)


class _Failing(BaseHTTPRequestHandler):
    """A stand-in API server that answers every request with one error status."""

    code = 500

    def _answer(self) -> None:
        message = FORBIDDEN if self.code == 403 else "boom"
        body = json.dumps(
            {
                "kind": "Status",
                "apiVersion": "v1",
                "status": "Failure",
                "code": self.code,
                "message": message,
            }
        )
        self.send_response(self.code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    do_GET = do_POST = do_DELETE = _answer

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def failing_api(request, tmp_path):
    """A kubeconfig for an API server that always answers ``request.param``."""
    handler = type("Failing", (_Failing,), {"code": request.param})
    with fake_api(handler, tmp_path) as kubeconfig:
        yield kubeconfig


@pytest.mark.parametrize("failing_api", [403], indirect=True)
def test_kubernetes_refusal_is_403_naming_the_permission(failing_api):
    with pman_server(Settings(kubeconfig=failing_api, status_cache=False)) as (url, _):
        response = requests.post(f"{url}/api/v1/", json=pfcon_request(), timeout=30)
        assert response.status_code == 403
        message = response.json()["message"]
        assert "needs the 'create' permission on 'jobs'" in message
        assert 'cannot create resource "jobs"' in message


@pytest.mark.parametrize("failing_api", [500, 502, 503, 429], indirect=True)
def test_kubernetes_answering_5xx_or_429_is_503(failing_api):
    with pman_server(Settings(kubeconfig=failing_api, status_cache=False)) as (url, _):
        for method, path, body in [
            ("POST", "/api/v1/", pfcon_request()),
            ("GET", "/api/v1/abc/", None),
        ]:
            response = requests.request(method, f"{url}{path}", json=body, timeout=60)
            assert response.status_code == 503
            assert "unavailable" in response.json()["message"]


@pytest.mark.parametrize(
    ("method", "path", "headers", "body", "code"),
    [
        ("POST", "/api/v1/", {"Content-Type": "application/json"}, json.dumps({"jid": "Bad"}), 400),
        ("POST", "/api/v1/", {"Content-Type": "text/plain"}, "{}", 415),
        ("PUT", "/api/v1/", {}, None, 405),
        ("POST", "/api/v1/some-job/", {}, None, 405),
    ],
)
def test_client_errors_on_the_cluster_backed_pman(pman, method, path, headers, body, code):
    response = requests.request(method, f"{pman.url}{path}", headers=headers, data=body, timeout=30)
    assert response.status_code == code
    assert response.json()["message"]


def test_paths_without_a_trailing_slash_redirect(pman, jobs):
    jid = jobs["success"]["jid"]
    for path in ("/api/v1", f"/api/v1/{jid}"):
        response = requests.get(f"{pman.url}{path}", allow_redirects=False, timeout=30)
        assert (response.status_code, response.headers["Location"]) == (308, f"{pman.url}{path}/")
    assert requests.get(f"{pman.url}/api/v1/{jid}", timeout=30).json()["jid"] == jid


# --- Behaviour clients rely on ------------------------------------------------------------


def test_a_restarted_or_second_pman_answers_the_same(pman, jobs, kube_cluster, secret, storage):
    jid = jobs["failure"]["jid"]
    expected, _ = pman.wait(jid)
    for cache in (True, False):
        settings = {"swift_secret_name": secret, "status_cache": cache, **storage.settings}
        with running_pman(kube_cluster, **settings) as other:
            assert other.get(jid).json() == expected


def test_another_replica_sees_a_submission_and_a_deletion_at_once(
    pman, kube_cluster, secret, storage
):
    with running_pman(kube_cluster, swift_secret_name=secret, **storage.settings) as other:
        assert other.app.extensions["pman"].jobs.cache.wait_synced(10)
        jid = python_job(pman, storage, SLEEP)["jid"]
        assert other.get(jid).status_code == 200
        assert pman.delete(jid).status_code == 204
        eventually(
            lambda: other.get(jid).status_code == 404,
            timeout=5,
            interval=0.05,
            what="the other pman seeing the delete",
        )


def test_a_finished_job_status_get_costs_no_kubernetes_request(pman, jobs):
    jid = jobs["success"]["jid"]
    pman.wait(jid)
    pman.get(jid)  # the finished processor's logs are read once, then kept
    before = pman.kube_requests()
    for _ in range(20):
        assert pman.get(jid).status_code == 200
    after = pman.kube_requests()
    spent = {op: after[op] - before.get(op, 0) for op in after if not op.startswith("watch")}
    assert sum(spent.values()) == 0, spent


def test_job_list_includes_submitted_jobs(pman, jobs):
    response = requests.get(f"{pman.url}/api/v1/_jobs/", timeout=30)
    assert response.status_code == 200
    listed = {job["jid"]: job for job in response.json()["jobs"]}
    assert {job["jid"] for job in jobs.values()} <= set(listed)
    assert all(job["logs"] == "" for job in listed.values())


def test_metrics_after_real_jobs(pman, jobs):
    text = requests.get(f"{pman.url}/metrics", timeout=10).text
    submitted = re.search(r"^pman_jobs_submitted_total (\d+)", text, re.MULTILINE)
    assert submitted is not None
    assert int(submitted.group(1)) >= len(jobs)
    assert 'pman_kubernetes_request_duration_seconds_count{operation="create jobs"}' in text
