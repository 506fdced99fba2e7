"""A jid submitted again after its DELETE is a new run: it never starts while the earlier
run's pods are still ending, its status comes from its own pods only, and its published
output (what Swift holds under its output prefix, what the data route serves, the manifest)
holds nothing of the earlier run.

pman on the test cluster, pods that really run, a real Swift."""

from __future__ import annotations

import io
import json
import tarfile
import uuid

import pytest
import requests

from pman.jobspec import RUN_LABEL
from pman.service import pods_of_run
from tests.support.data import data_pman, objects
from tests.support.names import unique_name
from tests.support.pman_cluster import publisher_requests, read_job
from tests.support.rest import job_pods
from tests.support.swift import delete_container
from tests.support.waiting import eventually

MANIFEST = ".publisher-manifest.json"
# Writes one file, says so and waits; stopped, it takes 3 s to write another and end (a
# processor that saves its work on SIGTERM): its pod keeps ending meanwhile.
SLOW_TO_STOP = (
    "import os, signal, sys, time\n"
    "out = sys.argv[-1]; os.makedirs(out, exist_ok=True)\n"
    "def stop(*_):\n"
    "    time.sleep(3); open(os.path.join(out, 'late.txt'), 'w').write('late\\n'); sys.exit(0)\n"
    "signal.signal(signal.SIGTERM, stop)\n"
    "open(os.path.join(out, 'old.txt'), 'w').write('old\\n')\n"
    "print('written', flush=True); time.sleep(300)\n"
)
WRITE = (
    "import os, sys; out = sys.argv[-1]; os.makedirs(out, exist_ok=True); "
    "open(os.path.join(out, '{name}'), 'w').write('{name}\\n')"
)
WAIT_FOR_FLAG_THEN_WRITE = (
    "import os, sys, time\n"
    "while not os.path.exists('{flag}'): time.sleep(0.1)\n"
    "out = sys.argv[-1]; os.makedirs(out, exist_ok=True)\n"
    "open(os.path.join(out, '{name}'), 'w').write('{name}\\n')\n"
)


@pytest.fixture(scope="module")
def bucket(swift_server):
    name = f"runs-{uuid.uuid4().hex[:12]}"
    connection = swift_server.connection()
    connection.put_container(name)
    connection.put_object(name, "incoming/in.txt", b"input\n")
    yield name
    delete_container(connection, name)


@pytest.fixture(params=[True, False], ids=["cache", "no-cache"])
def pman(request, kube_cluster, swift_server, secret):
    # A grace period long enough for a deleted run's publish container to publish.
    with data_pman(
        kube_cluster,
        swift_server,
        swift_secret_name=secret,
        job_grace_seconds=15,
        status_cache=request.param,
    ) as handle:
        yield handle


def body(jid: str, bucket: str, script: str) -> dict:
    return {
        "jid": jid,
        "image": "python:3.11",
        "entrypoint": ["python3", "-c", script],
        "args": [],
        "auid": "tester",
        "number_of_workers": 1,
        "cpu_limit": 1000,
        "memory_limit": 200,
        "gpu_limit": 0,
        "type": "fs",
        "input_dir": f"{bucket}/incoming",
        "output_dir": f"{bucket}/out-{jid}",
    }


def manifest_of(swift_server, bucket: str, jid: str) -> dict:
    return json.loads(objects(swift_server, bucket, f"out-{jid}")[MANIFEST])


def served(pman, jid: str) -> requests.Response:
    return requests.get(f"{pman.url}/api/v1/_data/{jid}/output/?format=tar", timeout=60)


def tar_names(content: bytes) -> set[str]:
    with tarfile.open(fileobj=io.BytesIO(content)) as archive:
        return set(archive.getnames())


def test_a_jid_submitted_again_while_its_deleted_run_ends_is_refused_then_runs_alone(
    pman, bucket, swift_server
):
    jid = unique_name("rerun")
    if pman.cluster.audit_log is None:
        pytest.skip("needs the local cluster's audit log to see the publisher watching")
    pman.submit(**body(jid, bucket, SLOW_TO_STOP))
    pman.wait(jid, lambda job: "written" in job["logs"])
    pod = job_pods(pman.cluster, jid)[0].metadata.name
    eventually(lambda: publisher_requests(pman.cluster, pod) > 0, what="the publisher watching")
    assert pman.delete(jid).status_code == 204

    # The earlier run's pod is ending (its publish container publishes what the processor
    # leaves, within the grace period): the same jid is refused meanwhile, with the reason.
    again = pman.post(body(jid, bucket, WRITE.format(name="new.txt")))
    assert again.status_code == 409, again.text
    assert "still ending" in again.json()["message"]

    # As on Kubernetes, the deleted pod stays listed (being deleted) until its containers
    # have ended, so its publish container published what the processor left.
    earlier = eventually(
        lambda: (
            MANIFEST in objects(swift_server, bucket, f"out-{jid}")
            and manifest_of(swift_server, bucket, jid)
        ),
        timeout=30,
        what="the deleted run's manifest",
    )
    assert earlier["processor"]["pod_ending"]["why"] == "deleted"
    assert sorted(f["path"] for f in earlier["files"]) == ["late.txt", "old.txt"]

    eventually(
        lambda: pman.post(body(jid, bucket, WRITE.format(name="new.txt"))).status_code == 201,
        timeout=90,
        interval=0.5,
        what="the jid accepted again once the earlier run's pods are gone",
    )
    job = pman.get(jid).json()
    assert job["status"] == "notstarted", job  # not the earlier run's pod's state
    final, _ = pman.wait(jid)
    assert final["status"] == "finishedSuccessfully", final

    run = read_job(pman.cluster, jid)["metadata"]["labels"][RUN_LABEL]
    manifest = manifest_of(swift_server, bucket, jid)
    assert manifest["run"] == run != earlier["run"]
    assert [f["path"] for f in manifest["files"]] == ["new.txt"]
    assert set(objects(swift_server, bucket, f"out-{jid}")) == {"new.txt", MANIFEST}
    response = served(pman, jid)
    assert response.status_code == 200, response.text
    assert tar_names(response.content) == {"new.txt", MANIFEST}


def test_an_earlier_runs_output_is_never_served_as_the_new_runs_and_is_replaced(
    pman, bucket, swift_server, shared_dir
):
    jid = unique_name("replace")
    pman.submit(**body(jid, bucket, WRITE.format(name="first.txt")))
    assert pman.wait(jid)[0]["status"] == "finishedSuccessfully"
    assert tar_names(served(pman, jid).content) == {"first.txt", MANIFEST}
    assert pman.delete(jid).status_code == 204
    eventually(lambda: job_pods(pman.cluster, jid) == [], what="the first run's pods gone")

    flag = shared_dir / "go"  # where the processor's non-root UID may look
    pman.submit(**body(jid, bucket, WAIT_FOR_FLAG_THEN_WRITE.format(flag=flag, name="b.txt")))
    pman.wait(jid, lambda job: job["status"] == "started")
    # The first run's manifest is still in Swift, but it is not this run's output.
    response = served(pman, jid)
    assert response.status_code == 409, response.text
    assert "not published yet" in response.json()["message"]

    flag.write_text("")
    assert pman.wait(jid)[0]["status"] == "finishedSuccessfully"
    assert set(objects(swift_server, bucket, f"out-{jid}")) == {"b.txt", MANIFEST}
    assert tar_names(served(pman, jid).content) == {"b.txt", MANIFEST}
    run = read_job(pman.cluster, jid)["metadata"]["labels"][RUN_LABEL]
    assert manifest_of(swift_server, bucket, jid)["run"] == run


def test_a_job_reads_the_pods_of_its_own_run_only():
    job = {"metadata": {"labels": {RUN_LABEL: "b"}}}
    earlier, current = ({"metadata": {"name": n, "labels": {RUN_LABEL: n}}} for n in "ab")
    assert pods_of_run(job, [earlier, current]) == [current]
    # A Job made before runs had ids keeps only the pods made without one.
    unlabelled = {"metadata": {"name": "old", "labels": {}}}
    assert pods_of_run({"metadata": {}}, [unlabelled, current]) == [unlabelled]
