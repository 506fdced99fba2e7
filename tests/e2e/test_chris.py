"""pman as a ChRIS compute resource, end to end: ``pman serve`` as its own process with the
pfcon API on, CUBE's Swift container shaped as CUBE shapes it
(``home/<user>/feeds/feed_<n>/<plugin>_<n>/data/...``), a feed of fs, ds and ts plugins run
as CUBE runs them, ChRIS links (a chain, a loop, a link to a file, one to the output's
folder that fails its job), and python-pfconclient, the client CUBE uses, driving a run."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from pfconclient.client import Client, JobType

from devstack.up import PmanProcess
from tests.support.data import objects
from tests.support.names import unique_name
from tests.support.pfcon import (
    BASE,
    PASSWORD,
    USER,
    PfconClient,
    cube_jid,
    feed_output,
    pfcon_env,
    plugin_form,
    put_objects,
)
from tests.support.rest import delete_jobs
from tests.support.waiting import eventually

# Plugins as programs of this machine (the local cluster runs the pods' commands here).
DIRCOPY = (  # an fs plugin with a path parameter: --dir's value is /share/incoming
    "import shutil, sys; args = sys.argv[1:]\n"
    "shutil.copytree(args[args.index('--dir') + 1], args[-1], dirs_exist_ok=True)\n"
)
PREFIX_COPY = (  # a ds plugin: every input file copied under a prefix
    "import os, shutil, sys; src, out = sys.argv[-2], sys.argv[-1]\n"
    "for top, _, names in os.walk(src):\n"
    "    for name in names:\n"
    "        rel = os.path.relpath(os.path.join(top, name), src)\n"
    "        os.makedirs(os.path.join(out, os.path.dirname(rel)), exist_ok=True)\n"
    "        shutil.copy(os.path.join(top, name), os.path.join(out, os.path.dirname(rel),\n"
    "                    'ds-' + name))\n"
)
LIST_INPUTS = (  # a ts plugin: what it was given, from several plugins' output folders
    "import os, sys; args = sys.argv[1:]\n"
    "src, out = args[args.index('--plugininstances') + 1], args[-1]\n"
    "names = sorted(os.path.relpath(os.path.join(t, n), src)\n"
    "               for t, _, ns in os.walk(src) for n in ns)\n"
    "open(os.path.join(out, 'inputs.txt'), 'w').write('\\n'.join(names) + '\\n')\n"
)
MISCHIEF = (  # an fs plugin that writes nested folders, a symbolic link and a ChRIS link
    "import os, sys; out = sys.argv[-1]\n"
    "os.makedirs(os.path.join(out, 'a', 'b', 'c'))\n"
    "open(os.path.join(out, 'a', 'b', 'c', 'deep.txt'), 'w').write('deep\\n')\n"
    "open(os.path.join(out, 'top.txt'), 'w').write('top\\n')\n"
    "open(os.path.join(out, 'a', 'steal.chrislink'), 'w').write('home/bob/private')\n"
    "os.symlink('/etc/passwd', os.path.join(out, 'passwd'))\n"
)
PLACEHOLDER = "root/data/squashEmptyDir"  # what CUBE sends an fs plugin without path params


@pytest.fixture(scope="module")
def compute(local_cluster, secret, swift_server, cube, tmp_path_factory) -> Iterator[str]:
    """``pman serve`` with the pfcon API on: the compute resource's URL, as registered."""
    env = {
        **os.environ,
        "KUBECONFIG": local_cluster.kubeconfig,
        "JOB_NAMESPACE": local_cluster.namespace,
        "SWIFT_SECRET_NAME": secret,
        **swift_server.environment(),
        **pfcon_env(cube),
    }
    log = tmp_path_factory.mktemp("pman") / "pman.log"
    process = PmanProcess(env, log).start()
    jids: list[str] = []
    try:
        yield f"{process.url}{BASE}", jids
    finally:
        process.stop()
        delete_jobs(local_cluster, jids)


@pytest.fixture
def cube_api(compute) -> PfconClient:
    url, jids = compute
    client = PfconClient(url)
    client.jids = jids
    return client


def run(cube_api: PfconClient, form) -> tuple[str, dict]:
    jid = dict(form)["jid"]
    cube_api.submit(form)
    final, _ = cube_api.wait(jid, timeout=180)
    return jid, final


def registered(cube_api, swift_server, cube, jid, output) -> dict[str, bytes]:
    """What CUBE does after a finished status: the file list, each file checked in Swift;
    the files, by path relative to the output."""
    answer = cube_api.files(jid, output).json()
    assert answer["job_output_path"] == output
    stored = objects(swift_server, cube, output)
    assert sorted(stored) == sorted(answer["rel_file_paths"]), "the list is what is in Swift"
    return stored


def test_a_feed_of_fs_ds_and_ts_plugins_with_chris_links(cube_api, swift_server, cube):
    connection = swift_server.connection()
    uploads = f"home/alice/uploads/{unique_name('study')}"
    put_objects(
        connection,
        cube,
        {
            f"{uploads}/scan/a.dcm": b"dicom a",
            f"{uploads}/scan/b.dcm": b"dicom b",
            # A chain of links, ending in a loop back to its first folder.
            f"{uploads}/links/lib.chrislink": b"lib/one",
            "lib/one/one.txt": b"one",
            "lib/one/next.chrislink": b"lib/two",
            "lib/two/two.txt": b"two",
            "lib/two/back.chrislink": b"lib/one",
            # A link to a file.
            f"{uploads}/links/report.chrislink": b"home/bob/shared/report.pdf",
            "home/bob/shared/report.pdf": b"%PDF",
            "home/bob/shared/not-linked.pdf": b"%PDF other",
            PLACEHOLDER + "/squashEmptyDir.txt": b"Empty input dir.",
        },
    )
    # 1: an fs plugin with a path parameter copies the uploads (CUBE: pl-dircopy).
    fs_out = feed_output("alice", 1, "pl-dircopy", 1)
    fs_jid, final = run(
        cube_api,
        plugin_form(
            cube_jid(),
            DIRCOPY,
            kind="fs",
            args=["--dir", uploads],
            args_path_flags="--dir",
            input_dirs=[uploads],
            output_dir=fs_out,
        ),
    )
    assert final["status"] == "finishedSuccessfully", final
    assert "--dir /share/incoming /share/outgoing" in final["cmd"]
    fs_files = registered(cube_api, swift_server, cube, fs_jid, fs_out)
    assert fs_files == {
        "scan/a.dcm": b"dicom a",
        "scan/b.dcm": b"dicom b",
        "links/lib_one/one.txt": b"one",
        "links/lib_one/lib_two/two.txt": b"two",
        "links/home_bob_shared/report.pdf": b"%PDF",
    }

    # 2: a ds plugin reads the previous plugin's output.
    ds_out = feed_output("alice", 1, "pl-simpledsapp", 2)
    ds_jid, final = run(
        cube_api, plugin_form(cube_jid(), PREFIX_COPY, input_dirs=[fs_out], output_dir=ds_out)
    )
    assert final["status"] == "finishedSuccessfully", final
    ds_files = registered(cube_api, swift_server, cube, ds_jid, ds_out)
    assert ds_files["scan/ds-a.dcm"] == b"dicom a"
    assert len(ds_files) == len(fs_files)

    # 3: a ts-style plugin reads several plugins' outputs.
    ts_out = feed_output("alice", 1, "pl-topologicalcopy", 3)
    ts_jid, final = run(
        cube_api,
        plugin_form(
            cube_jid(),
            LIST_INPUTS,
            kind="ts",
            args=["--plugininstances", f"{fs_out},{ds_out}"],
            args_path_flags="--plugininstances",
            input_dirs=[fs_out, ds_out],
            output_dir=ts_out,
        ),
    )
    assert final["status"] == "finishedSuccessfully", final
    ts_files = registered(cube_api, swift_server, cube, ts_jid, ts_out)
    listed = ts_files["inputs.txt"].decode().split()
    assert sorted(listed) == sorted([*fs_files, *ds_files])

    # 4: a link to a folder above its output fails its job, saying why.
    bad = f"{uploads}-bad"
    put_objects(
        connection, cube, {f"{bad}/x.txt": b"x", f"{bad}/feed.chrislink": b"home/alice/feeds"}
    )
    bad_out = feed_output("alice", 1, "pl-simpledsapp", 4)
    _, final = run(
        cube_api, plugin_form(cube_jid(), PREFIX_COPY, input_dirs=[bad], output_dir=bad_out)
    )
    assert final["status"] == "finishedWithError", final
    assert "the job's input was refused" in final["message"]
    assert "output folder or a folder above it" in final["message"]
    assert objects(swift_server, cube, bad_out) == {}


def test_a_plugin_cannot_publish_links_and_nothing_else_lands_in_its_output(
    cube_api, swift_server, cube
):
    output = feed_output("alice", 2, "pl-mischief", 5)
    jid, final = run(
        cube_api,
        plugin_form(cube_jid(), MISCHIEF, kind="fs", input_dirs=[PLACEHOLDER], output_dir=output),
    )
    assert final["status"] == "finishedSuccessfully", final
    stored = registered(cube_api, swift_server, cube, jid, output)
    assert stored == {"top.txt": b"top\n", "a/b/c/deep.txt": b"deep\n"}
    # Below the output's parent folder, only the output's files: no manifest, no plan.
    assert set(objects(swift_server, cube, output.rsplit("/", 1)[0])) == {
        "data/top.txt",
        "data/a/b/c/deep.txt",
    }


def test_python_pfconclient_drives_a_run_end_to_end(compute, swift_server, cube):
    url, jids = compute
    token = Client.get_auth_token(f"{url}auth-token/", USER, PASSWORD)
    client = Client(url, token)
    info = client.get_server_info()
    assert (info["requires_copy_job"], info["requires_upload_job"]) == (False, False)
    assert (client.requires_copy_job, client.pfcon_innetwork) == (False, True)

    jid = cube_jid()
    output = feed_output("carol", 3, "pl-simplefsapp", 9)
    descriptors = {
        "entrypoint": ["python3", "-c", MISCHIEF],
        "args": [],  # empty lists are left out, as CUBE's requests leave them
        "args_path_flags": [],
        "auid": "carol",
        "number_of_workers": 1,
        "cpu_limit": 1000,
        "memory_limit": 200,
        "gpu_limit": 0,
        "image": "fnndsc/pl-simplefsapp",
        "type": "fs",
        "env": [f"CHRIS_JID={jid}", "CHRIS_PLG_INST_ID=9"],
        "input_dirs": [PLACEHOLDER],
        "output_dir": output,
    }
    submitted = client.submit_job(JobType.PLUGIN, jid, descriptors)
    jids.append(jid)
    assert submitted["compute"]["status"] == "notStarted"
    status = eventually(
        lambda: (
            (s := client.get_job_status(JobType.PLUGIN, jid)["compute"]["status"])
            in ("finishedSuccessfully", "finishedWithError", "undefined")
            and s
        ),
        timeout=180,
        interval=1,
        what="the job finished",
    )
    assert status == "finishedSuccessfully"
    data = client.get_plugin_job_json_data(jid, output)
    assert data["job_output_path"] == output
    assert sorted(data["rel_file_paths"]) == ["a/b/c/deep.txt", "top.txt"]
    assert sorted(objects(swift_server, cube, output)) == sorted(data["rel_file_paths"])

    # CUBE's clean-up: a delete job (nothing to delete), then every job type it knows.
    deleting = client.submit_job(JobType.DELETE, jid, {})
    assert deleting["compute"]["message"] == "deleteSkipped"
    done = client.get_job_status(JobType.DELETE, jid)["compute"]["status"]
    assert done == "finishedSuccessfully"
    client.delete_job(JobType.PLUGIN, jid)
    client.delete_job(JobType.DELETE, jid)
    with pytest.raises(Exception, match="no job"):
        client.get_job_status(JobType.PLUGIN, jid)
