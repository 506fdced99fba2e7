"""The whole pipeline, end to end: pman over real HTTP creates the Job, the local cluster
runs its pod, the real publisher stages in and publishes to the real Swift server.

The jobs of this module are submitted together and followed side by side, each by its
own poller started right after its POST, so that every status it passed through is seen.
"""

from __future__ import annotations

import json
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from tests.support.names import unique_name
from tests.support.pipeline import (
    MANIFEST,
    ORDER,
    WORDCOUNT,
    alive,
    container_log,
    job_body,
    manifest,
    outputs,
    python_entrypoint,
    terminated,
    upload_sample,
    wordcount_locally,
)
from tests.support.rest import PmanClient, job_pods
from tests.support.swift import delete_container
from tests.support.waiting import eventually

EXIT_3 = (
    "import sys; open(sys.argv[-1] + '/partial.txt', 'w').write('half done\\n'); "
    "print('giving up', file=sys.stderr); sys.exit(3)"
)
HOG = "import time; data = b'x' * (512 << 20); time.sleep(30)"
SLEEP = "import time; print('sleeping', flush=True); time.sleep(300)"


@pytest.fixture(scope="module")
def pfcon_bucket(swift_server):
    """pfcon's layout: container ``key-<jid>`` holding ``incoming/``."""
    jid = unique_name("chris-jid")
    container = f"key-{jid}"
    connection = swift_server.connection()
    upload_sample(connection, container, "incoming")
    yield jid, container
    delete_container(connection, container)


@pytest.fixture(scope="module")
def jobs(pman: PmanClient, bucket, pfcon_bucket):
    """Every job of the module, POSTed at once; name -> (POST answer, future of wait())."""
    jid, container = pfcon_bucket
    bodies = {
        "success": job_body(bucket, args=["--top", "5"]),
        "exit3": job_body(bucket, entrypoint=python_entrypoint(EXIT_3)),
        "oom": job_body(bucket, entrypoint=python_entrypoint(HOG), memory_limit=64),
        "missing": job_body(bucket, input_dir=f"{bucket}/none"),
        "workers": job_body(bucket, number_of_workers=2),
        # CONTRACT.md's request from pfcon, the sample program as its entrypoint, integers
        # as strings.
        "pfcon": {
            "args": ["--saveinputmeta", "--saveoutputmeta", "--dir", "cube/uploads"],
            "args_path_flags": ["--dir"],
            "auid": "cube",
            "number_of_workers": "1",
            "cpu_limit": "1000",
            "memory_limit": "200",
            "gpu_limit": "0",
            "image": "fnndsc/pl-simplefsapp",
            "entrypoint": ["python3", str(WORDCOUNT)],
            "type": "fs",
            "env": [f"CHRIS_JID={jid}"],
            "input_dir": f"{container}/incoming",
            "output_dir": f"{container}/outgoing",
            "jid": jid,
        },
    }
    with ThreadPoolExecutor(len(bodies)) as pool:
        started: dict[str, tuple[dict, Future]] = {}
        for name, body in bodies.items():
            answer = pman.submit(body)
            started[name] = (answer, pool.submit(pman.wait, answer["jid"]))
        yield started


def finished(jobs, name):
    """The job's POST answer, its final object, and every object seen, POST's first."""
    answer, future = jobs[name]
    final, seen = future.result()
    return answer, final, [answer, *seen]


def assert_published(connection, container, prefix, *, exit_code, reason):
    """Outputs and manifest in Swift, the manifest naming each object with its MD5."""
    objects = outputs(connection, container, prefix)
    assert MANIFEST in objects
    found = manifest(connection, container, prefix)
    assert found["complete"] is True
    assert {f["path"] for f in found["files"]} == set(objects) - {MANIFEST}
    for entry in found["files"]:
        assert objects[entry["path"]]["hash"] == entry["md5"]
    assert (found["processor"]["exit_code"], found["processor"]["reason"]) == (exit_code, reason)
    return objects


def test_a_job_goes_notstarted_started_finished_and_publishes_its_outputs(
    jobs, swift_server, bucket, tmp_path
):
    answer, final, seen = finished(jobs, "success")
    statuses = [job["status"] for job in seen]
    assert statuses[0] == "notstarted"
    assert [ORDER[s] for s in statuses] == sorted(ORDER[s] for s in statuses)
    assert {"notstarted", "started", "finishedSuccessfully"} <= set(statuses)
    assert final["status"] == "finishedSuccessfully"
    assert (final["message"], final["phase"], final["reason"]) == ("finished", "done", "")
    assert final["timestamp"]

    connection = swift_server.connection()
    prefix = f"out-{answer['jid']}"
    objects = assert_published(connection, bucket, prefix, exit_code=0, reason="Completed")
    assert set(objects) == {"counts.tsv", "words.tsv", "summary.json", MANIFEST}
    here = wordcount_locally(tmp_path, "--top", "5")
    for name in ("counts.tsv", "words.tsv"):
        assert connection.get_object(bucket, f"{prefix}/{name}")[1] == here[name]
    published = json.loads(connection.get_object(bucket, f"{prefix}/summary.json")[1])
    expected = json.loads(here["summary.json"])
    assert published.pop("inputs") == ["/share/incoming"]
    expected.pop("inputs")
    assert published == expected
    totals = f"{expected['files']} files, {expected['lines']} lines, {expected['words']} words"
    assert totals in final["logs"]
    assert "wrote counts.tsv, words.tsv, summary.json to /share/outgoing" in final["logs"]


def test_a_processor_exiting_3_fails_the_job_and_its_outputs_are_still_published(
    jobs, swift_server, bucket
):
    answer, final, seen = finished(jobs, "exit3")
    assert final["status"] == "finishedWithError"
    assert "exited with code 3" in final["message"]
    assert "giving up" in final["logs"]
    assert "finishedSuccessfully" not in {job["status"] for job in seen}
    objects = assert_published(
        swift_server.connection(), bucket, f"out-{answer['jid']}", exit_code=3, reason="Error"
    )
    assert set(objects) == {"partial.txt", MANIFEST}


def test_a_processor_killed_for_memory_is_reported(jobs, swift_server, bucket):
    answer, final, _ = finished(jobs, "oom")
    assert (final["status"], final["reason"]) == ("finishedWithError", "OOMKilled")
    assert "ran out of memory and was killed (OOMKilled; its limit is 64Mi)" in final["message"]
    assert_published(
        swift_server.connection(), bucket, f"out-{answer['jid']}", exit_code=137, reason="OOMKilled"
    )


def test_missing_input_fails_the_stage_in_with_a_message_naming_the_prefix(jobs, bucket):
    _, final, _ = finished(jobs, "missing")
    assert (final["status"], final["reason"]) == ("finishedWithError", "InputMissing")
    assert "staging in the input from Swift failed" in final["message"]
    assert f"{bucket}/none" in final["message"]


def test_two_workers_run_two_pods_and_both_publish(jobs, swift_server, bucket, local_cluster):
    answer, final, _ = finished(jobs, "workers")
    jid = answer["jid"]
    assert final["status"] == "finishedSuccessfully"
    pods = job_pods(local_cluster, jid)
    assert len(pods) == 2
    for pod in pods:
        assert terminated(pod, "processor").exit_code == 0
        assert terminated(pod, "publish").exit_code == 0
        log = container_log(local_cluster, pod.metadata.name, "publish")
        assert f"published /share/outgoing to swift://{bucket}/out-{jid}" in log
    assert_published(
        swift_server.connection(), bucket, f"out-{jid}", exit_code=0, reason="Completed"
    )


def test_pfcons_request_runs_the_sample_program_to_finished_successfully(
    jobs, swift_server, pfcon_bucket, tmp_path
):
    answer, final, _ = finished(jobs, "pfcon")
    jid, container = pfcon_bucket
    assert answer["jid"] == jid
    assert answer["cmd"] == (
        f"python3 {WORDCOUNT} --saveinputmeta --saveoutputmeta --dir /share/incoming "
        "/share/outgoing"
    )
    assert final["status"] == "finishedSuccessfully"
    connection = swift_server.connection()
    objects = assert_published(connection, container, "outgoing", exit_code=0, reason="Completed")
    assert {"input.meta.json", "output.meta.json", "summary.json"} <= set(objects)
    summary = json.loads(connection.get_object(container, "outgoing/summary.json")[1])
    here = json.loads(wordcount_locally(tmp_path)["summary.json"])
    assert (summary["mode"], summary["files"], summary["words"]) == (
        "fs",
        here["files"],
        here["words"],
    )
    meta = json.loads(connection.get_object(container, "outgoing/input.meta.json")[1])
    assert meta["dir"] == "/share/incoming"


def test_delete_while_running_stops_the_processes_and_frees_the_jid(
    pman: PmanClient, bucket, local_cluster
):
    body = job_body(bucket, entrypoint=python_entrypoint(SLEEP))
    jid = pman.submit(body)["jid"]
    pman.wait(jid, lambda job: job["phase"] == "running" and "sleeping" in job["logs"])
    pids = {
        container: pid
        for (_, pod, container), pid in local_cluster.local.container_pids().items()
        if pod.startswith(f"{jid}-")
    }
    assert {"processor", "publish"} <= set(pids)

    response = pman.delete(jid)
    assert (response.status_code, response.content) == (204, b"")
    assert pman.get(jid).status_code == 404
    eventually(
        lambda: not any(alive(pid) for pid in pids.values()),
        timeout=30,
        interval=0.05,
        what="every container process ended",
    )
    eventually(lambda: job_pods(local_cluster, jid) == [], timeout=30, what="the pods gone")

    again = pman.post(body)
    assert again.status_code == 201, again.text
    assert again.json()["status"] == "notstarted"
    assert pman.delete(jid).status_code == 204


# Prints the words it was given and one variable, and leaves a file in its output.
ECHO_ARGV = (
    "import json, os, sys; print(json.dumps(sys.argv[1:])); print(json.dumps(os.environ['NOTE']));"
    " open(sys.argv[-1] + '/argv.json', 'w').write(json.dumps(sys.argv[1:]))"
)


def test_the_processor_gets_exactly_the_words_it_was_given(pman: PmanClient, swift_server, bucket):
    words = ["$(HOME)", "$(CHRIS_JID)", "$$", "$$(HOME)", "cost: 5$", "$(a$$b)"]
    body = job_body(
        bucket,
        entrypoint=python_entrypoint(ECHO_ARGV),
        args=words,
        type="fs",
        env=["HOME=/home/else", "CHRIS_JID=chris-jid-1", "NOTE=$(HOME) costs $$5"],
    )
    answer = pman.submit(body)
    expected = [*words, "/share/outgoing"]
    assert answer["cmd"] == " ".join([*python_entrypoint(ECHO_ARGV), *expected])
    final, _ = pman.wait(answer["jid"])
    assert final["status"] == "finishedSuccessfully", final
    assert final["cmd"] == answer["cmd"]
    printed = [json.loads(line) for line in final["logs"].splitlines()]
    assert printed == [expected, "$(HOME) costs $$5"]
    stored = swift_server.connection().get_object(bucket, f"out-{answer['jid']}/argv.json")[1]
    assert json.loads(stored) == expected
