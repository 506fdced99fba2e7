"""pman's own side of ``SWIFT_POD_CREDENTIALS=tempurl``, against the real Swift and over real
HTTP: the large-object route (``POST /api/v1/_large-objects/``), the scope a pman v6 job's
URLs may have, and its stage-in plans.

The route takes no token, so every body is a stranger's. It writes a manifest only where the
caller's own PUT URLs reach; a path that an HTTP client would rewrite (``..``), an expiry no
clock has, a container name with a ``/`` or a manifest Swift refuses get a 4xx naming the
field, and nothing is written."""

from __future__ import annotations

import hashlib
import re

import kubernetes
import pytest
import requests

from pman.tempurls import LARGE_OBJECTS_ROUTE
from tests.support.bodies import pfcon_request
from tests.support.kube import job_manifest
from tests.support.names import unique_name
from tests.support.pman_cluster import running_pman
from tests.support.swift import delete_container
from tests.support.tempurls import Account, tempauth_account

SEGMENT = b"what a job wrote, in one segment\n" * 32
PRECIOUS = b"another user's data\n"


@pytest.fixture(scope="module")
def account(swift_server) -> Account:
    return tempauth_account(swift_server)


@pytest.fixture(scope="module")
def pman(kube_cluster, account):
    settings = {
        "swift_credentials": account.credentials,
        "swift_pod_credentials": "tempurl",
        "status_cache": False,
    }
    with running_pman(kube_cluster, **settings) as handle:
        yield handle


@pytest.fixture
def containers(account):
    """A job's output container with one uploaded segment, and another user's container."""
    connection = account.connection()
    job, victim = unique_name("out"), unique_name("victim")
    for each in (job, f"{job}_segments", victim):
        connection.put_container(each)
    connection.put_object(f"{job}_segments", "out/big/0", SEGMENT)
    connection.put_object(victim, "precious", PRECIOUS)
    yield job, victim
    for each in (job, f"{job}_segments", victim):
        delete_container(connection, each)


def request_body(account: Account, job: str, name: str = "out/big", **segment) -> dict:
    """What the publisher sends for object ``name`` (a path under the job's PUT URL)."""
    signer = account.signer()
    destination = signer.url("PUT", job, "out/", prefix=True)
    base, query = destination.split("?")
    etag = hashlib.md5(SEGMENT).hexdigest()
    entry = {"path": f"/{job}_segments/out/big/0", "etag": etag, "size_bytes": len(SEGMENT)}
    return {
        "object": f"{base[: -len('out/')]}{name}?{query}",
        "segments": [signer.url("PUT", f"{job}_segments", "out/", prefix=True)],
        "manifest": [{**entry, **segment}],
        "etag": hashlib.md5(etag.encode()).hexdigest(),
    }


def post(pman, body) -> requests.Response:
    return requests.post(f"{pman.url}/{LARGE_OBJECTS_ROUTE}", json=body, timeout=30)


def test_the_route_writes_the_manifest_its_urls_allow(pman, account, containers):
    job, _ = containers
    written = post(pman, request_body(account, job))
    assert written.status_code == 201, written.text
    headers, data = account.connection().get_object(job, "out/big")
    assert (headers["x-static-large-object"], data) == ("True", SEGMENT)


@pytest.mark.parametrize(
    "name",
    ["out/../../{victim}/precious", "out/%2E%2E/%2E%2E/{victim}/precious", "out/./big"],
    ids=["dot-dot", "dot-dot-encoded", "dot"],
)
def test_a_path_with_dot_segments_is_refused_and_nothing_is_written(
    pman, account, containers, name
):
    job, victim = containers
    answer = post(pman, request_body(account, job, name.format(victim=victim)))
    assert answer.status_code == 400, answer.text
    assert "'.' or '..'" in answer.json()["message"]["object"]
    connection = account.connection()
    headers, data = connection.get_object(victim, "precious")
    assert data == PRECIOUS
    assert "x-static-large-object" not in headers
    assert connection.get_container(job)[1] == []


def test_a_segment_path_with_dot_segments_is_refused(pman, account, containers):
    job, victim = containers
    body = request_body(account, job, path=f"/{job}_segments/out/../../{victim}/precious")
    answer = post(pman, body)
    assert answer.status_code == 400, answer.text
    assert "'.' or '..'" in answer.json()["message"]["manifest"]
    assert account.connection().get_container(job)[1] == []


@pytest.mark.parametrize(
    "expires",
    ["1" + "0" * 400, "1" + "0" * 5000, "\u00b2", "\u0661\u0662"],
    ids=["overflowing", "thousands-of-digits", "superscript", "arabic-indic"],
)
def test_an_expiry_that_is_no_unix_time_is_refused(pman, account, containers, expires):
    job, _ = containers
    body = request_body(account, job)
    body["object"] = re.sub(r"temp_url_expires=\d+", f"temp_url_expires={expires}", body["object"])
    answer = post(pman, body)
    assert answer.status_code == 400, answer.text
    assert "temp_url_expires must be a UNIX time" in answer.json()["message"]["object"]


def test_a_container_name_holding_a_slash_is_refused(pman, account, containers):
    job, _ = containers
    body = request_body(account, job)
    body["object"] = body["object"].replace(f"/{job}/", f"/%2F{job}/")
    answer = post(pman, body)
    assert answer.status_code == 400, answer.text
    assert "container" in answer.json()["message"]["object"]
    body = request_body(account, job)
    body["segments"] = [body["segments"][0].replace(f"/{job}_segments/", "/%2F/")]
    answer = post(pman, body)
    assert answer.status_code == 400, answer.text


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"size_bytes": len(SEGMENT) + 1}, "Swift refused the manifest"),
        ({"path": "/{job}_segments/out/big/not-there"}, "Swift refused the manifest"),
    ],
    ids=["wrong-size", "missing-segment"],
)
def test_a_manifest_swift_refuses_is_422_with_swifts_reason(
    pman, account, containers, change, words
):
    job, _ = containers
    change = {key: value.format(job=job) if isinstance(value, str) else value
              for key, value in change.items()}  # fmt: skip
    answer = post(pman, request_body(account, job, **change))
    assert answer.status_code == 422, answer.text
    assert words in answer.json()["message"]
    assert account.connection().get_container(job)[1] == []


@pytest.mark.parametrize(
    "raw", [b"not json", b"[]", b'{"object": 5}'], ids=["text", "a-list", "a-number"]
)
def test_a_body_that_is_no_request_is_400(pman, raw):
    answer = requests.post(
        f"{pman.url}/{LARGE_OBJECTS_ROUTE}",
        data=raw,
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert answer.status_code == 400, answer.text


@pytest.mark.parametrize(
    "output_dir",
    ["{bucket}", "{bucket}_segments/out", "{bucket}_pman/runs"],
    ids=["a-whole-container", "a-segments-container", "the-bookkeeping-container"],
)
def test_a_tempurl_job_cannot_take_a_whole_container_or_pmans_own(pman, output_dir):
    bucket = pman.app.extensions["pman"].settings.swift_container_name
    body = pfcon_request(
        jid=unique_name("scope"),
        input_dir=f"{bucket}/in",
        output_dir=output_dir.format(bucket=bucket),
    )
    answer = requests.post(f"{pman.url}/api/v1/", json=body, timeout=30)
    assert answer.status_code == 400, answer.text
    assert "output_dir" in answer.json()["message"]


def test_a_job_kubernetes_does_not_create_leaves_no_stage_in_plan(
    pman, kube_cluster, account, containers
):
    job, _ = containers
    jid = unique_name("taken")
    # A Job of that name that pman did not make (no pod carries the jid's label): pman's
    # create is answered 409 by Kubernetes itself, after the plan was written.
    taken = job_manifest(jid, [{"name": "main", "image": "busybox", "command": ["true"]}])
    with kube_cluster.api_client() as api:
        batch = kubernetes.client.BatchV1Api(api)
        batch.create_namespaced_job(kube_cluster.namespace, taken)
        try:
            body = pfcon_request(jid=jid, input_dir=f"{job}/in", output_dir=f"{job}/out")
            answer = requests.post(f"{pman.url}/api/v1/", json=body, timeout=30)
        finally:
            batch.delete_namespaced_job(
                jid, kube_cluster.namespace, propagation_policy="Background"
            )
    assert answer.status_code == 409, answer.text
    bookkeeping = pman.app.extensions["pman"].settings.bookkeeping_container
    listing = account.connection().get_container(bookkeeping, prefix=f"runs/{jid}/")[1]
    assert listing == [], [entry["name"] for entry in listing]
