"""pfcon 5.x's storage modes against pman in each volume storage mode, over real HTTP on the
local cluster: a client that does to the storeBase what pfcon does (``tests.support.pfcon5``)
submits ``ds`` and ``fs`` jobs, and finds their outputs where pfcon looks. The processor
reads its input read-only and reaches nothing of the storeBase but its two directories."""

from __future__ import annotations

import pytest
import requests

from pman.cli import main
from pman.settings import ContainerUser
from tests.support.data import zip_bytes
from tests.support.names import unique_name
from tests.support.pfcon5 import Pfcon5, compute_data
from tests.support.pman_cluster import COPY_FILES, read_job, running_pman
from tests.support.rest import job_pods
from tests.support.storage import VOLUME_MODES, prepare_storebase
from tests.support.trees import read_tree, write_tree
from tests.support.waiting import eventually

# Processors that need no image: the venv's python3 is first on the pods' PATH.
COPY = (
    "import os, shutil, sys; src, out = sys.argv[-2], sys.argv[-1]; "
    "names = sorted(os.path.relpath(os.path.join(r, f), src) for r, _, fs in os.walk(src) "
    "for f in fs); print('input:', ' '.join(names)); "
    "open(os.path.join(out, 'listing.txt'), 'w').write(chr(10).join(names) + chr(10))\n"
    + COPY_FILES
)
GREET = "import sys; open(sys.argv[-1] + '/hello.txt', 'w').write('hello from an fs plugin\\n')"
TRY_WRITING_THE_INPUT = (
    "import sys\n"
    "for path, mode in (('/share/incoming/new.txt', 'w'), ('/share/incoming/a.txt', 'a')):\n"
    "    try:\n"
    "        open(path, mode).write('changed')\n"
    "        print(path, 'written')\n"
    "    except OSError as error:\n"
    "        print(path, 'refused:', error.strerror)\n"
    "open(sys.argv[-1] + '/done.txt', 'w').write('done')\n"
)
LOOK_AROUND = (
    "import os\n"
    "print('share:', ' '.join(sorted(os.listdir('/share'))))\n"
    "print('above the input:', ' '.join(sorted(os.listdir('/share/incoming/..'))))\n"
    "try:\n"
    "    print('peek:', open('/share/incoming/peek').read())\n"
    "except OSError as error:\n"
    "    print('peek refused:', error.strerror)\n"
)
SAY_WHO = (
    "import os, shutil, sys; src, out = sys.argv[-2], sys.argv[-1]; "
    "open(os.path.join(out, 'who.txt'), 'w')"
    ".write(f'{os.getuid()} {os.getgid()} {sorted(os.getgroups())}')\n" + COPY_FILES
)
NEEDS_MOUNTS = "read-only mounts and /share need mount namespaces; rewrite mode has none"


@pytest.fixture(scope="module", params=VOLUME_MODES)
def mode(request, kube_cluster):
    if kube_cluster.local is None:
        pytest.skip("the client writes the storeBase on this machine: needs the local cluster")
    return request.param


@pytest.fixture(scope="module")
def storebase(mode, kube_cluster, tmp_path_factory):
    """pfcon's storeBase (its STOREBASE_MOUNT), the directory the jobs mount: a host directory
    prepared for the jobs' UIDs as an operator must, or a claim, which the kubelet gives to
    the jobs' fsGroup."""
    if mode == "host":
        return prepare_storebase(tmp_path_factory.mktemp("storebase"))
    return kube_cluster.local.claim_directory(kube_cluster.namespace, unique_name("storebase"))


@pytest.fixture(scope="module")
def pman(mode, storebase, kube_cluster):
    settings = (
        {"storage_type": "host", "storebase": storebase}
        if mode == "host"
        else {"storage_type": "kubernetes_pvc", "volume_name": storebase.name}
    )
    with running_pman(kube_cluster, **settings) as handle:
        yield handle


@pytest.fixture
def pfcon(pman, storebase):
    return Pfcon5(pman, storebase)


@pytest.fixture
def rewrite(kube_cluster) -> bool:
    return kube_cluster.local.mount_mode == "rewrite"


def ds(script: str = COPY, **changes):
    return compute_data(type="ds", entrypoint=["python3", "-c", script], **changes)


def fs(script: str = GREET, **changes):
    return compute_data(type="fs", entrypoint=["python3", "-c", script], **changes)


# -- pfcon's zipfile mode: key-<jid>/incoming and key-<jid>/outgoing ----------------------


def test_zipfile_mode_a_ds_job_reads_incoming_and_pfcon_zips_outgoing(pfcon, storebase):
    jid = unique_name("zip-ds")
    data = {"scan/a.dcm": b"slice a\n", "scan/b.dcm": b"slice b\n", "notes.txt": b"notes\n"}
    created = pfcon.submit_zipfile(jid, ds(), zip_bytes(data))
    assert created["status"] == "notstarted"
    assert created["cmd"].endswith(" /share/incoming /share/outgoing")
    job = pfcon.wait(jid)
    assert (job["status"], job["message"]) == ("finishedSuccessfully", "finished"), job
    assert "input: notes.txt scan/a.dcm scan/b.dcm" in job["logs"]
    output = pfcon.output_zip(jid)
    assert output == {**data, "listing.txt": b"notes.txt\nscan/a.dcm\nscan/b.dcm\n"}
    assert read_tree(storebase / f"key-{jid}" / "incoming") == data  # left as pfcon wrote it
    pfcon.delete(jid)
    assert pfcon.pman.get(jid).status_code == 404
    assert not (storebase / f"key-{jid}").exists()


def test_zipfile_mode_an_fs_job_writes_outgoing(pfcon):
    jid = unique_name("zip-fs")
    pfcon.submit_zipfile(
        jid, fs(args=["--dir", "cube/uploads"], args_path_flags=["--dir"]), zip_bytes({})
    )
    job = pfcon.wait(jid)
    assert job["status"] == "finishedSuccessfully", job
    assert job["cmd"].endswith(" --dir /share/incoming /share/outgoing")
    assert pfcon.output_zip(jid) == {"hello.txt": b"hello from an fs plugin\n"}
    pfcon.delete(jid)


# -- pfcon's in-network modes: paths of the shared filesystem ------------------------------


def test_filesystem_mode_a_ds_job_reads_and_writes_paths_of_the_shared_tree(pfcon, storebase):
    uploads = {"a.txt": b"alpha\n", "sub/b.txt": b"beta\n"}
    user = unique_name("user")
    write_tree(storebase / "home" / user / "uploads" / "study", uploads)
    output = f"home/{user}/feeds/feed_1/pl-copy_1/data"
    jid = unique_name("fs-ds")
    pfcon.submit_filesystem(jid, ds(), [f"/home/{user}/uploads/study/"], f"/{output}/")
    job = pfcon.wait(jid)
    assert job["status"] == "finishedSuccessfully", job
    listing = pfcon.output_listing(output)
    assert listing == {
        "job_output_path": output,
        "rel_file_paths": ["a.txt", "listing.txt", "sub/b.txt"],
    }
    assert read_tree(storebase / output)["sub/b.txt"] == b"beta\n"
    assert read_tree(storebase / "home" / user / "uploads") == {
        f"study/{name}": data for name, data in uploads.items()
    }
    pfcon.delete(jid)
    assert (storebase / output / "listing.txt").exists()  # in this mode the data is CUBE's


def test_filesystem_mode_an_fs_job_writes_its_output_path(pfcon, storebase):
    user = unique_name("user")
    (storebase / "home" / user / "uploads").mkdir(parents=True)
    output = f"home/{user}/feeds/feed_2/pl-greet_1/data"
    jid = unique_name("fs-fs")
    pfcon.submit_filesystem(jid, fs(), [f"home/{user}/uploads"], output)
    assert pfcon.wait(jid)["status"] == "finishedSuccessfully"
    assert pfcon.output_listing(output)["rel_file_paths"] == ["hello.txt"]
    pfcon.delete(jid)


def test_fslink_mode_linked_inputs_are_read_and_the_output_lands_in_the_shared_tree(
    pfcon, storebase
):
    user = unique_name("user")
    write_tree(storebase / "home" / user / "uploads" / "study", {"scan.dcm": b"scan\n"})
    parent = f"home/{user}/feeds/feed_3/pl-topo_1/data"
    write_tree(
        storebase / parent,
        {"own.txt": b"own\n", "study.chrislink": f"home/{user}/uploads/study".encode()},
    )
    output = f"home/{user}/feeds/feed_3/pl-topo_1/pl-copy_2/data"
    jid = unique_name("fslink")
    pfcon.submit_fslink(jid, ds(), [parent], output)
    job = pfcon.wait(jid)
    assert job["status"] == "finishedSuccessfully", job
    linked = f"home_{user}_uploads_study/scan.dcm"
    assert f"input: {linked} own.txt" in job["logs"]
    listing = pfcon.output_listing(output)
    assert listing["rel_file_paths"] == [linked, "listing.txt", "own.txt"]
    pfcon.delete(jid)
    assert not (storebase / f"key-{jid}").exists()
    assert (storebase / output / "own.txt").read_bytes() == b"own\n"


def test_a_fixed_container_user_reads_the_input_and_writes_the_output(
    mode, kube_cluster, tmp_path_factory
):
    # CONTAINER_USER=2000:3000 is the pods' runAsUser, runAsGroup and fsGroup: the kubelet
    # gives a claim's tree to that group; a host directory its operator gives to it.
    if mode == "host":
        storebase = prepare_storebase(tmp_path_factory.mktemp("fixed"), gid=3000)
        settings = {"storage_type": "host", "storebase": storebase}
    else:
        claim = unique_name("storebase")
        storebase = kube_cluster.local.claim_directory(kube_cluster.namespace, claim)
        settings = {"storage_type": "kubernetes_pvc", "volume_name": claim}
    user = ContainerUser(uid=2000, gid=3000)
    with running_pman(kube_cluster, container_user=user, **settings) as handle:
        pfcon = Pfcon5(handle, storebase)
        jid = unique_name("fixed")
        pfcon.submit_zipfile(jid, ds(SAY_WHO), zip_bytes({"scan/a.dcm": b"slice a\n"}))
        spec = read_job(handle.cluster, jid)["spec"]["template"]["spec"]
        assert spec["securityContext"] == {
            "runAsNonRoot": True,
            "seccompProfile": {"type": "RuntimeDefault"},
            "runAsUser": 2000,
            "runAsGroup": 3000,
            "fsGroup": 3000,
            "fsGroupChangePolicy": "OnRootMismatch",
        }
        job = pfcon.wait(jid)
        assert job["status"] == "finishedSuccessfully", job
        output = pfcon.output_zip(jid)
        assert output["scan/a.dcm"] == b"slice a\n"
        if kube_cluster.local.isolation.root:
            assert output["who.txt"] == b"2000 3000 [3000]"
            written = storebase / f"key-{jid}" / "outgoing" / "who.txt"
            assert written.stat().st_uid == 2000
        pfcon.delete(jid)


# -- what the job may touch ------------------------------------------------------------


def test_the_processor_cannot_write_its_input(pfcon, storebase, rewrite):
    if rewrite:
        pytest.skip(NEEDS_MOUNTS)
    jid = unique_name("ro")
    pfcon.submit_zipfile(jid, ds(TRY_WRITING_THE_INPUT), zip_bytes({"a.txt": b"original\n"}))
    job = pfcon.wait(jid)
    assert job["status"] == "finishedSuccessfully", job
    assert "/share/incoming/new.txt refused: Read-only file system" in job["logs"]
    assert "/share/incoming/a.txt refused: Read-only file system" in job["logs"]
    assert read_tree(storebase / f"key-{jid}" / "incoming") == {"a.txt": b"original\n"}
    assert pfcon.output_zip(jid) == {"done.txt": b"done"}
    pfcon.delete(jid)


def test_the_pod_mounts_two_directories_of_the_storebase_and_nothing_else(pfcon, pman):
    jid = unique_name("mounts")
    pfcon.submit_zipfile(jid, ds(), zip_bytes({"x.txt": b"x"}))
    spec = read_job(pman.cluster, jid)["spec"]["template"]["spec"]
    (processor,) = spec["containers"]
    assert [
        (m["mountPath"], m.get("subPath"), m.get("readOnly")) for m in processor["volumeMounts"]
    ] == [
        ("/share/incoming", f"key-{jid}/incoming", True),
        ("/share/outgoing", f"key-{jid}/outgoing", None),
    ]
    (check,) = spec["initContainers"]
    assert check["volumeMounts"] == [
        {"name": "storebase", "mountPath": "/storebase", "readOnly": True}
    ]
    assert {volume["name"] for volume in spec["volumes"]} == {"storebase"}
    assert pfcon.wait(jid)["status"] == "finishedSuccessfully"
    pfcon.delete(jid)


def test_links_in_the_input_do_not_reach_the_rest_of_the_storebase(pfcon, storebase, rewrite):
    # A relative link resolves inside the container's own view of the file system, where
    # nothing of the storeBase but the two directories is mounted.
    if rewrite:
        pytest.skip(NEEDS_MOUNTS)
    other = unique_name("other")
    write_tree(storebase / f"key-{other}" / "incoming", {"secret.txt": b"another job's\n"})
    jid = unique_name("peek")
    (storebase / f"key-{jid}" / "incoming").mkdir(parents=True)
    (storebase / f"key-{jid}" / "incoming" / "peek").symlink_to(
        f"../../key-{other}/incoming/secret.txt"
    )
    pfcon.submit_zipfile(jid, ds(LOOK_AROUND), zip_bytes({}))
    job = pfcon.wait(jid)
    assert job["status"] == "finishedSuccessfully", job
    assert "share: incoming outgoing" in job["logs"]
    assert "above the input: incoming outgoing" in job["logs"]
    assert "peek refused: No such file or directory" in job["logs"]
    assert "another job's" not in job["logs"]
    pfcon.delete(jid)


@pytest.mark.parametrize("which", ["input_dir", "output_dir"])
def test_a_directory_that_links_out_of_the_storebase_fails_the_job_and_nothing_is_written(
    pfcon, storebase, tmp_path, which
):
    # The kubelet refuses a subPath that resolves outside its volume
    # (CreateContainerConfigError, retried for ever): pman reports it as the failure it is.
    outside = tmp_path / "outside"
    write_tree(outside, {"secret.txt": b"not the job's\n"})
    jid = unique_name("escape")
    key = storebase / f"key-{jid}"
    (key / "incoming").mkdir(parents=True)
    (key / "outgoing").mkdir()
    name = "incoming" if which == "input_dir" else "outgoing"
    (key / name).rmdir()
    (key / name).symlink_to(outside)
    pfcon.submit_dirs(jid, fs(GREET), f"key-{jid}/incoming", f"key-{jid}/outgoing")
    job = pfcon.wait(jid, timeout=60)
    assert (job["status"], job["reason"]) == ("finishedWithError", "CreateContainerConfigError")
    assert job["message"].startswith("the processor cannot start (CreateContainerConfigError): ")
    assert "subPath" in job["message"]
    assert job["logs"] == f"The processor did not run: {job['message']}."
    assert read_tree(outside) == {"secret.txt": b"not the job's\n"}
    pfcon.delete(jid)
    assert read_tree(outside) == {"secret.txt": b"not the job's\n"}


def test_a_ds_job_without_its_input_directory_fails_with_input_missing(pfcon, storebase):
    jid = unique_name("missing")
    pfcon.submit_dirs(jid, ds(), f"key-{jid}/incoming", f"key-{jid}/outgoing")
    job = pfcon.wait(jid, timeout=60)
    assert (job["status"], job["reason"]) == ("finishedWithError", "InputMissing")
    assert job["message"] == (
        f"the input directory 'key-{jid}/incoming' does not exist in the storeBase "
        "(or is not a directory)"
    )
    assert job["logs"] == f"The processor did not run: {job['message']}."
    assert not (storebase / f"key-{jid}" / "incoming").exists()  # not made by the check
    pfcon.delete(jid)


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"input_dir": "key-a/../key-b/incoming"}, "input_dir", "'..'"),
        ({"output_dir": "key-a/outgoing/../../etc"}, "output_dir", "'..'"),
        ({"input_dir": "//etc"}, "input_dir", "a path relative to the storeBase, not absolute"),
        ({"input_dir": "key-a", "output_dir": "key-a/outgoing"}, "output_dir", "inside input_dir"),
    ],
)
def test_paths_out_of_the_directories_are_refused_at_post(pfcon, storebase, changes, field, words):
    jid = unique_name("refused")
    body = {**ds(), "jid": jid, "input_dir": "key-a/incoming", "output_dir": "key-a/outgoing"}
    response = pfcon.pman.post(body | changes)
    assert response.status_code == 400
    assert words in response.json()["message"][field]
    assert pfcon.pman.get(jid).status_code == 404
    assert not (storebase / "key-a").exists()
    assert not (storebase / "key-b").exists()


# -- the API in a volume mode ------------------------------------------------------------


def test_the_server_info_reports_the_storage_mode(pman, mode):
    assert requests.get(f"{pman.url}/api/v1/", timeout=10).json()["storage_type"] == mode


def test_the_data_routes_and_the_cli_answer_409_naming_the_mode(pman, mode, tmp_path, capsys):
    jid = unique_name("data")
    upload = requests.post(
        f"{pman.url}/api/v1/_data/{jid}/input/",
        data=zip_bytes({"a.txt": b"a"}),
        headers={"Content-Type": "application/zip"},
        timeout=30,
    )
    download = requests.get(f"{pman.url}/api/v1/_data/{jid}/output/", timeout=30)
    for response in (upload, download):
        assert response.status_code == 409
        message = response.json()["message"]
        assert f"pman runs with STORAGE_TYPE={mode}" in message
        assert "the client writes before it submits the job" in message
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.txt").write_text("a")
    url = f"{pman.url}/api/v1/"
    for argv in (
        ["push", "--url", url, jid, str(tmp_path / "in")],
        ["pull", "--url", url, jid, str(tmp_path / "out")],
    ):
        capsys.readouterr()
        assert main(argv) == 3
        error = capsys.readouterr().err
        assert f"409 pman runs with STORAGE_TYPE={mode}" in error
        assert len(error.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_delete_stops_a_running_job_and_its_jid_is_free_again(pfcon, pman):
    jid = unique_name("stop")
    sleeper = "import time; print('sleeping', flush=True); time.sleep(300)"
    pfcon.submit_zipfile(jid, fs(sleeper), zip_bytes({}))
    pman.wait(jid, lambda j: "sleeping" in j["logs"])
    pfcon.delete(jid)
    assert pman.get(jid).status_code == 404
    eventually(lambda: job_pods(pman.cluster, jid) == [], timeout=30, what="the pods gone")
    pfcon.submit_zipfile(jid, fs(), zip_bytes({}))
    assert pfcon.wait(jid)["status"] == "finishedSuccessfully"
    pfcon.delete(jid)
