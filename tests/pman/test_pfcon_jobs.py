"""The pfcon API's plugin jobs, really run: pman on the test cluster (pods that really run,
the real publisher), a real Swift holding CUBE's container, CUBE's requests over HTTP.

What CUBE relies on: POST answers 201 ``notStarted``, GET follows the job in pfcon's
spelling, ``file/`` lists exactly what was published (never a symbolic link or a
``.chrislink``) as a JSON attachment echoing the path, nothing but the plugin's files lands
under ``output_dir``, POST is idempotent (a running or finished job is answered as it is, a
failed one is run again), DELETE removes the job; a refused input fails the job, not the
POST."""

from __future__ import annotations

import json

import pytest
import requests

import swiftcreds
from pman.jobspec import RUN_LABEL
from tests.support.data import objects
from tests.support.names import unique_name
from tests.support.pfcon import (
    BASE,
    PfconClient,
    cube_jid,
    feed_output,
    pfcon_settings,
    plugin_form,
    put_objects,
)
from tests.support.pman_cluster import read_job, running_pman
from tests.support.rest import delete_jobs, job_pods
from tests.support.waiting import eventually

WRITE_TREE = (
    "import os, sys\n"
    "out = sys.argv[-1]\n"
    "os.makedirs(os.path.join(out, 'nested', 'deeper'), exist_ok=True)\n"
    "open(os.path.join(out, 'result.txt'), 'w').write('result\\n')\n"
    "open(os.path.join(out, 'nested', 'deeper', 'r.csv'), 'w').write('a,b\\n')\n"
    "open(os.path.join(out, 'sneaky.chrislink'), 'w').write('home/bob')\n"
    "os.symlink('/etc/hostname', os.path.join(out, 'link-to-host'))\n"
    "print('wrote the tree', flush=True)\n"
)
COPY_INPUT = "import shutil, sys; shutil.copytree(sys.argv[-2], sys.argv[-1], dirs_exist_ok=True)"
WRITE_THEN_FAIL = (
    "import os, sys; out = sys.argv[-1]\n"
    "open(os.path.join(out, 'partial.txt'), 'w').write('partial\\n')\n"
    "sys.exit(3)\n"
)
WRITE = "import os, sys; open(os.path.join(sys.argv[-1], '{name}'), 'w').write('{name}\\n')"
WAIT_FOR_FLAG = (
    "import os, sys, time\n"
    "while not os.path.exists('{flag}'): time.sleep(0.1)\n"
    "open(os.path.join(sys.argv[-1], 'done.txt'), 'w').write('done\\n')\n"
)
PLACEHOLDER = "root/data/squashEmptyDir"


@pytest.fixture(scope="module")
def pman(kube_cluster, swift_server, secret, cube):
    settings = {
        "swift_credentials": swiftcreds.from_environment(swift_server.environment()),
        "swift_secret_name": secret,
        **pfcon_settings(cube),
    }
    with running_pman(kube_cluster, **settings) as handle:
        client = PfconClient(f"{handle.url}{BASE}")
        try:
            yield handle, client
        finally:
            delete_jobs(kube_cluster, client.jids)


def test_a_cube_run_from_post_to_file_list_to_delete(pman, swift_server, cube):
    handle, cube_api = pman
    jid = cube_jid()
    output = feed_output("alice", 1, "pl-tree", 1)
    form = plugin_form(jid, WRITE_TREE, kind="fs", input_dirs=[PLACEHOLDER], output_dir=output)
    response = cube_api.post(form)
    assert response.status_code == 201, response.text
    answer = response.json()
    assert set(answer) == {"data", "compute"}
    assert answer["data"] == {}
    assert set(answer["compute"]) == {
        "jid", "image", "cmd", "status", "message", "timestamp", "logs"
    }  # fmt: skip
    assert answer["compute"]["status"] == "notStarted"
    assert answer["compute"]["jid"] == jid
    assert answer["compute"]["image"] == "fnndsc/pl-test"
    assert answer["compute"]["cmd"].endswith(" /share/outgoing")

    final, seen = cube_api.wait(jid)
    assert final["status"] == "finishedSuccessfully", final
    assert {job["status"] for job in seen} <= {"notStarted", "started", "finishedSuccessfully"}
    assert "wrote the tree" in final["logs"]
    assert final["timestamp"]

    listed = cube_api.files(jid, output)
    assert listed.status_code == 200, listed.text
    assert listed.headers["Content-Type"] == "application/json"
    assert listed.headers["Content-Disposition"] == f"attachment; filename={jid}.json"
    body = listed.json()
    assert body["job_output_path"] == output
    assert sorted(body["rel_file_paths"]) == ["nested/deeper/r.csv", "result.txt"]
    # CUBE checks every listed object exists; nothing else is there (no manifest, no link).
    stored = objects(swift_server, cube, output)
    assert set(stored) == set(body["rel_file_paths"])
    assert stored["result.txt"] == b"result\n"
    manifests = objects(swift_server, f"{cube}_pman", f"outputs/{output}")
    assert set(manifests) == {"manifest.json"}
    skipped = {s["path"]: s["reason"] for s in json.loads(manifests["manifest.json"])["skipped"]}
    assert set(skipped) == {"sneaky.chrislink", "link-to-host"}

    plans = objects(swift_server, f"{cube}_pman", f"runs/{jid}")
    assert len(plans) == 1
    assert cube_api.delete(jid).status_code == 204
    assert cube_api.get(jid).status_code == 404
    assert cube_api.delete(jid).status_code == 204  # unknown: 204 too
    assert objects(swift_server, f"{cube}_pman", f"runs/{jid}") == {}
    eventually(lambda: job_pods(handle.cluster, jid) == [], what="the job's pods gone")


def test_a_ds_plugin_stages_its_input_with_pfcons_link_layout(pman, swift_server, cube):
    _, cube_api = pman
    jid = cube_jid()
    base = unique_name("foo")
    put_objects(
        swift_server.connection(),
        cube,
        {
            f"{base}/feed/input/test.txt": b"Test file",
            f"{base}/PIPELINES/bob/pipeline.yml": b"Test pipeline",
            f"{base}/home/bob/PIPELINES_bob.chrislink": f"{base}/PIPELINES/bob".encode(),
            f"{base}/feed/input/home_bob.chrislink": f"{base}/home/bob".encode(),
        },
    )
    output = f"{base}/feed/output"
    form = plugin_form(jid, COPY_INPUT, input_dirs=[f"{base}/feed/input"], output_dir=output)
    cube_api.submit(form)
    final, _ = cube_api.wait(jid)
    assert final["status"] == "finishedSuccessfully", final
    linked = f"{base}_home_bob/{base}_PIPELINES_bob/pipeline.yml"
    files = sorted(cube_api.files(jid, output).json()["rel_file_paths"])
    assert files == sorted(["test.txt", linked])
    assert objects(swift_server, cube, output)[linked] == b"Test pipeline"


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("home/alice/feeds/{feed}", "'home/alice/feeds/{feed}', which is this job's output"),
        ("../other-container/secrets", "which is not a path in the container"),
    ],
    ids=["output-ancestor", "escapes-the-container"],
)
def test_a_refused_link_fails_the_job_not_the_post(pman, swift_server, cube, target, reason):
    _, cube_api = pman
    jid = cube_jid()
    feed = unique_name("feed").replace("-", "_")
    output = f"home/alice/feeds/{feed}/pl-copy_4/data"
    source = f"home/alice/feeds/{feed}/pl-dircopy_3/data"
    put_objects(
        swift_server.connection(),
        cube,
        {f"{source}/in.txt": b"in", f"{source}/feed.chrislink": target.format(feed=feed).encode()},
    )
    response = cube_api.post(plugin_form(jid, COPY_INPUT, input_dirs=[source], output_dir=output))
    assert response.status_code == 201, response.text
    final, _ = cube_api.wait(jid)
    assert final["status"] == "finishedWithError", final
    assert final["message"].startswith("the job's input was refused: the ChRIS link ")
    assert f"'{source}/feed.chrislink'" in final["message"]
    assert reason.format(feed=feed) in final["message"]
    assert final["logs"].startswith("The processor did not run")
    listed = cube_api.files(jid, output)
    assert (listed.status_code, listed.json()["rel_file_paths"]) == (200, [])
    assert objects(swift_server, cube, output) == {}


def test_post_is_idempotent_while_running_and_once_finished(pman, shared_dir):
    handle, cube_api = pman
    jid = cube_jid()
    flag = shared_dir / "go"  # where the plugin's non-root UID may look
    output = feed_output("alice", 3, "pl-wait", 5)
    form = plugin_form(
        jid,
        WAIT_FOR_FLAG.format(flag=flag),
        kind="fs",
        input_dirs=[PLACEHOLDER],
        output_dir=output,
    )
    cube_api.submit(form)
    run = read_job(handle.cluster, jid)["metadata"]["labels"][RUN_LABEL]
    cube_api.wait(jid, lambda job: job["status"] == "started")
    again = cube_api.post(form)
    assert again.status_code == 201, again.text
    assert again.json()["compute"]["status"] == "started"
    assert again.json()["data"] == {}
    flag.write_text("")
    assert cube_api.wait(jid)[0]["status"] == "finishedSuccessfully"
    once_more = cube_api.post(form)
    assert once_more.json()["compute"]["status"] == "finishedSuccessfully"
    assert read_job(handle.cluster, jid)["metadata"]["labels"][RUN_LABEL] == run
    assert len(job_pods(handle.cluster, jid)) == 1


def test_post_of_a_failed_job_runs_it_again_and_replaces_its_output(pman, swift_server, cube):
    handle, cube_api = pman
    jid = cube_jid()
    output = feed_output("alice", 4, "pl-flaky", 6)
    failing = plugin_form(
        jid, WRITE_THEN_FAIL, kind="fs", input_dirs=[PLACEHOLDER], output_dir=output
    )
    cube_api.submit(failing)
    failed, _ = cube_api.wait(jid)
    assert failed["status"] == "finishedWithError", failed
    assert "exited with code 3" in failed["message"]
    # What a failed plugin left is published, listed, and CUBE registers it.
    assert cube_api.files(jid, output).json()["rel_file_paths"] == ["partial.txt"]
    first_run = read_job(handle.cluster, jid)["metadata"]["labels"][RUN_LABEL]

    fixed = plugin_form(
        jid, WRITE.format(name="good.txt"), kind="fs", input_dirs=[PLACEHOLDER], output_dir=output
    )
    again = cube_api.post(fixed)
    assert again.status_code == 201, again.text
    assert again.json()["compute"]["status"] == "notStarted"
    second_run = read_job(handle.cluster, jid)["metadata"]["labels"][RUN_LABEL]
    assert second_run != first_run
    final, _ = cube_api.wait(jid)
    assert final["status"] == "finishedSuccessfully", final
    assert cube_api.files(jid, output).json()["rel_file_paths"] == ["good.txt"]
    assert set(objects(swift_server, cube, output)) == {"good.txt"}


def test_the_file_list_is_refused_for_another_path_or_before_the_end(pman, shared_dir):
    _, cube_api = pman
    jid = cube_jid()
    output = feed_output("alice", 5, "pl-wait", 7)
    flag = shared_dir / "go"
    form = plugin_form(
        jid, WAIT_FOR_FLAG.format(flag=flag), kind="fs", input_dirs=[PLACEHOLDER], output_dir=output
    )
    cube_api.submit(form)
    early = cube_api.files(jid, output)
    assert early.status_code == 409, early.text
    assert "not published yet" in early.json()["message"]
    flag.write_text("")
    assert cube_api.wait(jid)[0]["status"] == "finishedSuccessfully"
    for path in (f"{output}/../../other", "home/bob/feeds/feed_1/pl-x_1/data", "/", ""):
        refused = cube_api.files(jid, path)
        assert refused.status_code == 400, (path, refused.text)
        assert "job_output_path" in refused.json()["message"]
    # A leading or trailing slash is the same folder; the answer echoes the path as sent.
    listed = cube_api.files(jid, f"/{output}/")
    assert listed.json() == {"job_output_path": f"/{output}/", "rel_file_paths": ["done.txt"]}


def test_a_path_with_a_plus_is_echoed_exactly_as_cube_sent_it(pman, swift_server, cube):
    _, cube_api = pman
    jid = cube_jid()
    output = feed_output("a+b", 6, "pl-write", 8)  # Django user names may hold '+'
    form = plugin_form(
        jid,
        WRITE.format(name="x.txt"),
        kind="fs",
        input_dirs=[PLACEHOLDER],
        output_dir=output,
        user="a+b",
    )
    cube_api.submit(form)
    assert cube_api.wait(jid)[0]["status"] == "finishedSuccessfully"
    assert cube_api.files(jid, output).json()["job_output_path"] == output
    assert set(objects(swift_server, cube, output)) == {"x.txt"}


def test_unknown_jids_and_jobs_of_pmans_own_api_are_not_the_pfcon_apis(pman):
    handle, cube_api = pman
    assert cube_api.get(cube_jid()).status_code == 404
    assert cube_api.delete(cube_jid()).status_code == 204
    jid = unique_name("v6")
    handle.submit(jid=jid)  # through /api/v1/
    assert cube_api.get(jid).status_code == 404
    form = plugin_form(
        jid, WRITE.format(name="x"), kind="fs", input_dirs=[PLACEHOLDER], output_dir="home/x"
    )
    clash = cube_api.post(form)
    assert clash.status_code == 409, clash.text
    assert "pman's own API" in clash.json()["message"]
    assert cube_api.delete(jid).status_code == 204
    assert requests.get(f"{handle.url}/api/v1/{jid}/", timeout=30).status_code == 200


def test_delete_stops_a_running_job_and_removes_its_pods(pman, tmp_path):
    handle, cube_api = pman
    jid = cube_jid()
    form = plugin_form(
        jid,
        WAIT_FOR_FLAG.format(flag=tmp_path / "never"),
        kind="fs",
        input_dirs=[PLACEHOLDER],
        output_dir=feed_output("alice", 7, "pl-wait", 9),
    )
    cube_api.submit(form)
    cube_api.wait(jid, lambda job: job["status"] == "started")
    assert cube_api.delete(jid).status_code == 204
    assert cube_api.get(jid).status_code == 404
    eventually(lambda: job_pods(handle.cluster, jid) == [], timeout=90, what="its pods gone")


def test_an_unreachable_swift_at_submit_is_503(kube_cluster, secret, cube):
    unreachable = swiftcreds.from_environment(
        {"ST_AUTH": "http://127.0.0.1:9/auth/v1.0", "ST_USER": "test:tester", "ST_KEY": "x"}
    )
    settings = {"swift_credentials": unreachable, "swift_secret_name": secret}
    with running_pman(kube_cluster, **settings, **pfcon_settings(cube)) as handle:
        cube_api = PfconClient(f"{handle.url}{BASE}")
        jid = cube_jid()
        form = plugin_form(
            jid, COPY_INPUT, input_dirs=["home/alice/in"], output_dir="home/alice/out"
        )
        response = cube_api.post(form)
        assert response.status_code == 503, response.text
        assert "Swift" in response.json()["message"]
        assert cube_api.get(jid).status_code == 404  # nothing was created
