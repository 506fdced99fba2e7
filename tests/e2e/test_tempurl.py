"""Whole jobs whose pods hold no Swift secret (``SWIFT_POD_CREDENTIALS=tempurl``), end to end:
``pman serve`` as its own process, the real publisher in the pods, the real Swift, with
tempauth and with Keystone. A pman v6 job and a pfcon job each stage their input in through
the plan pman wrote (a ChRIS link followed for the pfcon one), publish a large file as a
Static Large Object through their temporary URLs, and write their manifest last; their pods,
read back from the cluster, mount no Secret and carry URLs that expire. Swift restarting
mid-job does not stop a publish; a temp URL key changed under a running job fails it, saying
why, with nothing published."""

from __future__ import annotations

import json
import os
import random
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from devstack.up import PmanProcess
from pman.swift import TEMP_URL_KEYS
from tests.support.names import unique_name
from tests.support.pfcon import BASE, PfconClient, cube_jid, feed_output, pfcon_env, plugin_form
from tests.support.pipeline import (
    MANIFEST,
    is_waiting,
    job_body,
    manifest,
    outputs,
    publish_through_a_swift_outage,
    python_entrypoint,
    upload_sample,
)
from tests.support.rest import PmanClient, delete_jobs, job_pods
from tests.support.swift import delete_container
from tests.support.tempurls import Account, keystone_account, tempauth_account
from tests.support.waiting import eventually

SEGMENT = 1 << 20  # the smallest segment Swift's SLO takes (but the last)
BIG = 2 * SEGMENT + SEGMENT // 2  # three segments
BIG_DATA = random.Random(7).randbytes(BIG)
LIFETIME = 604800 + 30 + 300  # JOB_DEADLINE_SECONDS + JOB_GRACE_SECONDS + margin
# A processor that needs no image: waits for $FLAG when set, copies its input under copy/,
# writes a large file.
COPY_AND_BIG = (
    "import os, random, shutil, sys, time\n"
    "flag = os.environ.get('FLAG')\n"
    "print('waiting for the flag', flush=True)\n"
    "while flag and not os.path.exists(flag): time.sleep(0.05)\n"
    "shutil.copytree(sys.argv[-2], os.path.join(sys.argv[-1], 'copy'))\n"
    f"data = random.Random(7).randbytes({BIG})\n"
    "open(os.path.join(sys.argv[-1], 'big.bin'), 'wb').write(data)\n"
    "print('done', flush=True)\n"
)


@contextmanager
def tempurl_pman(
    cluster: Any, credentials: dict[str, str], log_dir: Path, cube: str
) -> Iterator[PmanProcess]:
    """``pman serve`` in tempurl mode with ``credentials`` (environment variables), the pfcon
    API on over CUBE's container ``cube``, large objects written through itself."""
    process = PmanProcess({}, log_dir / f"pman-{unique_name('log')}.log")
    process.env = {
        **os.environ,
        "KUBECONFIG": cluster.kubeconfig,
        "JOB_NAMESPACE": cluster.namespace,
        "SWIFT_POD_CREDENTIALS": "tempurl",
        "PMAN_SERVICE_URL": process.url,
        "PUBLISHER_SEGMENT_SIZE": str(SEGMENT),
        **credentials,
        **pfcon_env(cube),
    }
    process.start()
    try:
        yield process
    finally:
        process.stop()


@contextmanager
def job_containers(account: Account) -> Iterator[tuple[str, str]]:
    """A bucket holding the sample input under ``incoming/``, and CUBE's container (with
    pman's bookkeeping and segments beside each), deleted afterwards."""
    connection = account.connection()
    bucket, cube = f"key-{uuid.uuid4().hex[:12]}", f"cube-{uuid.uuid4().hex[:10]}"
    upload_sample(connection, bucket, "incoming")
    connection.put_container(cube)
    try:
        yield bucket, cube
    finally:
        for name in (bucket, cube):
            for each in (name, f"{name}_pman", f"{name}_segments"):
                delete_container(connection, each)


@pytest.fixture(scope="module")
def tempauth(local_cluster, swift_server, tmp_path_factory):
    """A tempurl-mode pman on the tempauth account: (its client, the account, bucket, cube)."""
    account = tempauth_account(swift_server)
    with job_containers(account) as (bucket, cube):
        log_dir = tmp_path_factory.mktemp("pman")
        with tempurl_pman(local_cluster, swift_server.environment(), log_dir, cube) as process:
            client = PmanClient(process.url)
            try:
                yield client, account, bucket, cube, process.url
            finally:
                delete_jobs(local_cluster, client.jids)


def pod_manifest(cluster: Any, jid: str) -> dict[str, Any]:
    """The job's pod as the cluster holds it (``kubectl get pod -o yaml``)."""
    (pod,) = job_pods(cluster, jid)
    with cluster.api_client() as api:
        return api.sanitize_for_serialization(pod)


def assert_holds_no_secret(pod: dict[str, Any], submitted: float) -> None:
    """No Secret volume, no Secret in a projected one; the stage-in's and publish's URLs
    expire in the future, the job's lifetime after it was ``submitted`` (UNIX time); the
    processor holds none."""
    volumes = pod["spec"]["volumes"]
    assert not [v for v in volumes if "secret" in v], volumes
    for volume in volumes:
        for source in volume.get("projected", {}).get("sources", []):
            assert "secret" not in source, volume
    containers = {c["name"]: c for c in pod["spec"]["containers"] + pod["spec"]["initContainers"]}
    now = time.time()
    for name in ("stage-in", "publish"):
        words = containers[name].get("command", []) + containers[name].get("args", [])
        urls = [w[w.index("http") :] for w in words if "temp_url_sig=" in w]
        assert urls, f"{name} holds no temporary URL"
        for url in urls:
            (expires,) = parse_qs(urlsplit(url).query)["temp_url_expires"]
            # The job's deadline (the default week), its grace period and 300 s, from submit.
            assert now < int(expires) <= now + LIFETIME, url.split("?")[0]
            assert int(expires) >= int(submitted) + LIFETIME, url.split("?")[0]
    processor = json.dumps(containers["processor"])
    assert "temp_url_sig" not in processor
    assert "secret" not in processor.lower()


def assert_written_last(connection: Any, last: tuple[str, str], others: list[tuple[str, str]]):
    """Object ``last`` was written after every one of ``others`` (Swift's X-Timestamp)."""
    when = float(connection.head_object(*last)["x-timestamp"])
    for container, name in others:
        assert float(connection.head_object(container, name)["x-timestamp"]) < when, name


def assert_big_is_a_large_object(connection: Any, container: str, name: str) -> None:
    headers, data = connection.get_object(container, name)
    assert headers["x-static-large-object"] == "True"
    assert data == BIG_DATA


def segment_names(connection: Any, container: str) -> list[tuple[str, str]]:
    listing = connection.get_container(f"{container}_segments", full_listing=True)[1]
    return [(f"{container}_segments", entry["name"]) for entry in listing]


@pytest.mark.fault
def test_a_v6_job_stages_in_through_its_plan_publishes_a_large_object_and_survives_swift_restarting(
    tempauth, local_cluster, swift_server, shared_dir
):
    pman, account, bucket, cube, _ = tempauth
    flag = shared_dir / "go"
    body = job_body(bucket, entrypoint=python_entrypoint(COPY_AND_BIG), env=[f"FLAG={flag}"])
    submitted = time.time()
    jid = pman.submit(body)["jid"]
    pman.wait(jid, is_waiting)
    assert_holds_no_secret(pod_manifest(local_cluster, jid), submitted)
    final = publish_through_a_swift_outage(pman, local_cluster, swift_server, jid, flag)
    assert (final["status"], final["message"]) == ("finishedSuccessfully", "finished"), final

    connection = account.connection()
    prefix = f"out-{jid}"
    published = outputs(connection, bucket, prefix)
    sample = outputs(connection, bucket, "incoming")
    assert set(published) == {MANIFEST, "big.bin", *(f"copy/{name}" for name in sample)}
    for name, entry in sample.items():
        assert published[f"copy/{name}"]["hash"] == entry["hash"]
    assert_big_is_a_large_object(connection, bucket, f"{prefix}/big.bin")
    found = manifest(connection, bucket, prefix)
    assert found["complete"] is True
    assert {f["path"] for f in found["files"]} == set(published) - {MANIFEST}
    others = [(bucket, f"{prefix}/{name}") for name in published if name != MANIFEST]
    others += segment_names(connection, bucket)
    assert len(others) == len(published) - 1 + 3
    assert_written_last(connection, (bucket, f"{prefix}/{MANIFEST}"), others)
    assert plans(connection, cube, jid)
    assert pman.delete(jid).status_code == 204
    eventually(lambda: not plans(connection, cube, jid), timeout=30, what="the plans deleted")


def plans(connection: Any, cube: str, jid: str) -> list[str]:
    """The job's stage-in plans in the bookkeeping container."""
    listing = connection.get_container(f"{cube}_pman", prefix=f"runs/{jid}/")[1]
    return [entry["name"] for entry in listing]


def test_a_pfcon_job_stages_its_linked_input_and_publishes_only_its_files(
    tempauth, local_cluster, swift_server
):
    _, account, _, cube, url = tempauth
    cube_api = PfconClient(f"{url}{BASE}")
    connection = account.connection()
    uploads = f"home/alice/uploads/{unique_name('study')}"
    for name, data in {
        f"{uploads}/scan/a.dcm": b"dicom a",
        f"{uploads}/links/lib.chrislink": b"lib/one",
        "lib/one/one.txt": b"one",
        "lib/two/not-linked.txt": b"not linked",
    }.items():
        connection.put_object(cube, name, data)
    output = feed_output("alice", 1, "pl-copy", 1)
    jid = cube_jid()
    form = plugin_form(jid, COPY_AND_BIG, input_dirs=[uploads], output_dir=output)
    try:
        submitted = time.time()
        cube_api.submit(form)
        final, _ = cube_api.wait(jid)
        assert final["status"] == "finishedSuccessfully", final
        assert_holds_no_secret(pod_manifest(local_cluster, jid), submitted)
        listed = cube_api.files(jid, output).json()["rel_file_paths"]
        # Nothing but the plugin's files under the output: no manifest, no plan.
        stored = outputs(connection, cube, output)
        assert sorted(stored) == sorted(listed)
        assert set(stored) == {"copy/scan/a.dcm", "copy/links/lib_one/one.txt", "big.bin"}
        assert_big_is_a_large_object(connection, cube, f"{output}/big.bin")
        manifest_object = (f"{cube}_pman", f"outputs/{output}/manifest.json")
        others = [(cube, f"{output}/{name}") for name in stored]
        assert_written_last(connection, manifest_object, others + segment_names(connection, cube))
    finally:
        assert cube_api.delete(jid).status_code == 204


def waiting_copy_job(pman: PmanClient, bucket: str, flag: Path) -> str:
    """A job whose processor waits for ``flag``, submitted and running; its jid."""
    body = job_body(bucket, entrypoint=python_entrypoint(COPY_AND_BIG), env=[f"FLAG={flag}"])
    jid = pman.submit(body)["jid"]
    pman.wait(jid, is_waiting)
    return jid


@pytest.mark.fault
def test_a_key_rotated_through_key_2_keeps_running_jobs_and_a_key_replaced_fails_them(
    tempauth, shared_dir
):
    pman, account, bucket, _, url = tempauth
    connection = account.connection()
    key, key_2 = TEMP_URL_KEYS
    flag = shared_dir / "first"
    kept = waiting_copy_job(pman, bucket, flag)
    previous = connection.head_account()[key.lower()]  # set by pman if there was none
    try:
        # As openshift/README.rst says: the old key as Key-2 first, then the new one.
        connection.post_account({key_2: previous, key: "a-new-key-" + uuid.uuid4().hex})
        flag.touch()
        final, _ = pman.wait(kept)
        assert final["status"] == "finishedSuccessfully", final
        assert "big.bin" in outputs(connection, bucket, f"out-{kept}")

        # The key replaced with no Key-2: running jobs' URLs are refused.
        flag = shared_dir / "second"
        failed = waiting_copy_job(pman, bucket, flag)
        connection.post_account({key_2: "", key: "another-key-" + uuid.uuid4().hex})
        flag.touch()
        final, _ = pman.wait(failed)
    finally:
        connection.post_account({key: previous, key_2: ""})
    assert (final["status"], final["reason"]) == ("finishedWithError", "PublishFailed"), final
    assert "exit code 15" in final["message"], final
    assert "the key it was signed with has changed" in final["message"], final
    assert outputs(connection, bucket, f"out-{failed}") == {}
    served = requests.get(f"{url}/api/v1/_data/{failed}/output/", timeout=30)
    assert served.status_code in (404, 409), served.text


def test_a_v6_job_on_keystone(keystone_swift, local_cluster, tmp_path_factory):
    directory = tmp_path_factory.mktemp("keystone")
    account = keystone_account(keystone_swift, directory)
    credentials = {"SWIFT_CREDENTIALS_FILE": str(account.credentials_file)}
    with job_containers(account) as (bucket, cube):
        with tempurl_pman(local_cluster, credentials, directory, cube) as process:
            pman = PmanClient(process.url)
            try:
                body = job_body(bucket, entrypoint=python_entrypoint(COPY_AND_BIG))
                submitted = time.time()
                jid = pman.submit(body)["jid"]
                final, _ = pman.wait(jid)
                assert final["status"] == "finishedSuccessfully", final
                assert_holds_no_secret(pod_manifest(local_cluster, jid), submitted)
            finally:
                delete_jobs(local_cluster, pman.jids)
        connection = account.connection()
        prefix = f"out-{jid}"
        published = outputs(connection, bucket, prefix)
        assert "big.bin" in published
        assert_big_is_a_large_object(connection, bucket, f"{prefix}/big.bin")
        assert manifest(connection, bucket, prefix)["complete"] is True
        assert_written_last(
            connection,
            (bucket, f"{prefix}/{MANIFEST}"),
            [(bucket, f"{prefix}/{name}") for name in published if name != MANIFEST],
        )
