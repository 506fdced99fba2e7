"""The ``pman`` client commands against a running pman (the test cluster, the real Swift):
a job's whole life through the CLI, the request built from flags and files, JSON output,
and each failure as one line with its exit code."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shlex
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from pman.cli import main
from tests.support.bodies import pfcon_request
from tests.support.data import (
    SAMPLE,
    Containers,
    container_exists,
    data_pman,
    objects,
    publish,
    tar_bytes,
    zip_bytes,
)
from tests.support.names import unique_name
from tests.support.pman_cluster import COPY_INPUT, read_job
from tests.support.trees import read_tree, write_tree

MANIFEST = ".publisher-manifest.json"
TOKEN = "cli-t0ken"


@pytest.fixture(scope="module")
def pman(kube_cluster, swift_server, secret):
    with data_pman(kube_cluster, swift_server, swift_secret_name=secret) as handle:
        yield handle


class Cli:
    """Runs ``pman`` in this process against the test pman; deletes the jobs it submitted."""

    def __init__(self, pman, capsys, containers: Containers) -> None:
        self.pman = pman
        self.capsys = capsys
        self.containers = containers

    def __call__(self, *argv: str, url: str | None = None) -> tuple[int, str, str]:
        self.capsys.readouterr()
        command, *rest = argv
        code = main([command, "--url", url or f"{self.pman.url}/api/v1/", *rest])
        out, err = self.capsys.readouterr()
        return code, out, err

    def jid(self) -> str:
        jid = self.containers.jid()
        self.pman.jids.append(jid)  # deleted with the module's pman
        return jid


@pytest.fixture
def cli(pman, capsys, swift_server):
    containers = Containers(swift_server)
    yield Cli(pman, capsys, containers)
    containers.cleanup()


def python_entrypoint(script: str) -> str:
    return shlex.join(["python3", "-c", script])


def test_a_job_from_push_to_pull(cli, swift_server, tmp_path):
    jid = cli.jid()
    code, out, _ = cli("push", jid, str(write_tree(tmp_path / "in", SAMPLE)))
    assert (code, out) == (0, f"pushed 4 files (2.0 MiB) to key-{jid}/incoming\n")

    code, out, _ = cli(
        "submit", "--jid", jid, "--image", "python:3.11",
        "--entrypoint", python_entrypoint(COPY_INPUT), "--env", f"CHRIS_JID={jid}",
        "--wait", "--interval", "0.2", "--", "--msg", "hi",
    )  # fmt: skip
    assert code == 0, out
    progress = out.splitlines()
    assert progress[0].endswith(f"{jid} notstarted (pending)") or "notstarted" in progress[0]
    assert f"{jid} finishedSuccessfully (done)" in progress[-1]

    code, out, _ = cli("logs", jid)
    assert code == 0
    assert f"args: --msg hi /share/outgoing\nenv: {jid}\n" in out

    code, out, _ = cli("pull", jid, str(tmp_path / "out"))
    assert (code, out) == (0, f"pulled 4 files (2.0 MiB) into {tmp_path / 'out'}\n")
    pulled = read_tree(tmp_path / "out")
    assert json.loads(pulled.pop(MANIFEST))["complete"] is True
    assert pulled == SAMPLE

    code, _, _ = cli("pull", jid, "--archive", str(tmp_path / "out.zip"))
    assert code == 0
    with zipfile.ZipFile(tmp_path / "out.zip") as archive:
        assert {name: archive.read(name) for name in archive.namelist() if name != MANIFEST} == (
            SAMPLE
        )
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []

    code, out, _ = cli("status", jid, "--json")
    assert (code, json.loads(out)["status"]) == (0, "finishedSuccessfully")

    assert cli("delete", jid)[:2] == (0, f"deleted {jid}\n")
    code, out, err = cli("status", jid)
    assert (code, out) == (3, "")
    assert err == f"pman: 404 no job {jid!r}\n"


def test_submit_takes_every_field_as_a_flag(cli, kube_cluster):
    jid = cli.jid()
    code, out, _ = cli(
        "submit", "--jid", jid, "--image", "python:3.11", "--entrypoint", "python3 -c pass",
        "--type", "ds", "--cpu-limit", "250", "--memory-limit", "100", "--gpu-limit", "0",
        "--number-of-workers", "1", "--auid", "alice", "--env", "A=1", "--env", "B=x=y",
        "--args-path-flag=--in", "--input-dir", f"key-{jid}/in", "--output-dir",
        f"key-{jid}/out", "--json", "--", "--in", "here", "--flag",
    )  # fmt: skip
    assert code == 0, out
    job = json.loads(out)
    assert (
        job["cmd"] == "python3 -c pass --in /share/incoming --flag /share/incoming /share/outgoing"
    )
    processor = read_job(kube_cluster, jid)["spec"]["template"]["spec"]["containers"]
    processor = next(c for c in processor if c["name"] == "processor")
    assert {"name": "A", "value": "1"} in processor["env"]
    assert {"name": "B", "value": "x=y"} in processor["env"]
    assert processor["resources"]["limits"]["cpu"] == "250m"
    metadata = read_job(kube_cluster, jid)["metadata"]
    assert metadata["annotations"]["pman.chrisproject.org/input-dir"] == f"key-{jid}/in"
    assert metadata["labels"]["pman.chrisproject.org/auid"] == "alice"


def test_submit_reads_a_job_file_and_flags_win(cli, kube_cluster, tmp_path, monkeypatch):
    jid = cli.jid()
    request = pfcon_request(jid=jid, cpu_limit="300", entrypoint=["python3", "-c", "pass"])
    (tmp_path / "job.json").write_text(json.dumps(request))
    code, out, _ = cli("submit", "--file", str(tmp_path / "job.json"), "--cpu-limit", "400")
    assert code == 0, out
    assert out.startswith(f"submitted {jid}: notstarted")
    container = read_job(kube_cluster, jid)["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["cpu"] == "400m"

    other = cli.jid()
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps({**request, "jid": other})))
    code, out, _ = cli("submit", "--file", "-", "--json")
    assert (code, json.loads(out)["jid"]) == (0, other)


def test_status_lists_jobs(cli):
    jid = cli.jid()
    assert cli("submit", "--jid", jid, "--image", "i", "--entrypoint", "python3 -c pass")[0] == 0
    code, out, _ = cli("status")
    assert code == 0
    assert any(line.split()[0] == jid for line in out.splitlines())
    code, out, _ = cli("status", "--json")
    assert jid in [job["jid"] for job in json.loads(out)["jobs"]]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["submit", "--entrypoint", "x"], "submit needs --image"),
        (["submit", "--file", "/nonexistent.json"], "cannot read the job file"),
        (["status", "--wait"], "status --wait needs a JID"),
        (["pull", "some-jid"], "pull needs a DIRECTORY"),
    ],
)
def test_usage_errors_exit_2_with_one_line(cli, argv, message):
    code, out, err = cli(*argv)
    assert (code, out) == (2, "")
    assert err.startswith(f"pman: {message}")
    assert err.count("\n") == 1


@pytest.mark.parametrize("argv", [["--env", "NOEQUALS"], ["--cpu-limit", "1.5"]])
def test_bad_flag_values_exit_2(cli, argv):
    with pytest.raises(SystemExit) as caught:
        cli("submit", "--image", "i", "--entrypoint", "e", *argv)
    assert caught.value.code == 2


def test_refused_request_is_one_line_exit_3(cli):
    code, _, err = cli("submit", "--jid", "Not_Valid", "--image", "i", "--entrypoint", "e")
    assert code == 3
    assert err.startswith("pman: 400 jid: must be a DNS-1123 label")
    assert err.count("\n") == 1


def test_waiting_on_a_failing_job_exits_1(cli):
    jid = cli.jid()
    fail = python_entrypoint("import sys; print('failing'); sys.exit(3)")
    code, out, _ = cli(
        "submit", "--jid", jid, "--image", "i", "--entrypoint", fail, "--wait", "--interval", "0.2"
    )
    assert code == 1, out
    assert f"{jid} finishedWithError (done)" in out.splitlines()[-1]
    assert "exited with code 3" in out.splitlines()[-1]
    assert len(out.splitlines()) == len(set(out.splitlines()))  # each change printed once


def test_a_url_that_is_not_http_exits_2(cli):
    code, _, err = cli("status", "x", url="ftp://example.org/")
    assert code == 2
    assert err == "pman: 'ftp://example.org/' is not an http(s) URL of a pman server\n"


def test_unreachable_pman_exits_4(cli):
    code, _, err = cli("status", "x", url="http://127.0.0.1:9/api/v1/")
    assert code == 4
    assert err == "pman: cannot reach pman at http://127.0.0.1:9/api/v1/: Connection refused\n"


def test_url_and_token_come_from_the_environment(kube_cluster, swift_server, capsys, monkeypatch):
    with data_pman(kube_cluster, swift_server, api_token=TOKEN, status_cache=False) as guarded:
        monkeypatch.setenv("PMAN_URL", guarded.url)  # a bare server URL gets /api/v1/
        assert main(["status"]) == 3
        assert "401" in capsys.readouterr().err
        assert main(["status", "--token", TOKEN]) == 0
        capsys.readouterr()
        monkeypatch.setenv("PMAN_API_TOKEN", TOKEN)
        assert main(["status", "--json"]) == 0
        assert "jobs" in json.loads(capsys.readouterr().out)


def test_push_takes_archive_files(cli, swift_server, tmp_path):
    for name, data in [
        ("in.tar.gz", tar_bytes(SAMPLE, mode="w:gz")),
        ("in.zip", zip_bytes(SAMPLE)),
    ]:
        jid = cli.jid()
        (tmp_path / name).write_bytes(data)
        code, out, _ = cli("push", jid, str(tmp_path / name), "--json")
        assert (code, json.loads(out)["files"]) == (0, len(SAMPLE))
        assert objects(swift_server, f"key-{jid}", "incoming") == SAMPLE


def test_push_refuses_a_link_and_sends_nothing(cli, swift_server, tmp_path):
    jid = cli.jid()
    source = write_tree(tmp_path / "in", {"a.txt": b"a"})
    os.symlink("/etc/passwd", source / "passwd")
    code, _, err = cli("push", jid, str(source))
    assert code == 5
    assert err == f"pman: {source / 'passwd'} is a symbolic link: pman uploads no links\n"
    assert not container_exists(swift_server, f"key-{jid}")


def test_push_refuses_a_file_that_is_no_archive(cli, tmp_path):
    (tmp_path / "notes.txt").write_text("just text")
    code, _, err = cli("push", cli.jid(), str(tmp_path / "notes.txt"))
    assert code == 5
    assert "neither a tar (plain or compressed) nor a zip file" in err


def test_pull_of_unpublished_output_exits_3_and_writes_nothing(cli, tmp_path):
    jid = unique_name("none")
    code, _, err = cli("pull", jid, "--archive", str(tmp_path / "out.tar"))
    assert code == 3
    assert err.startswith("pman: 404 no job")
    assert list(tmp_path.iterdir()) == []


# The longest name most filesystems take (255 bytes), in a directory and at the top.
LONGEST = "n" * 251 + ".txt"


def test_pull_unpacks_a_file_whose_name_is_the_longest_the_filesystem_takes(
    cli, swift_server, tmp_path
):
    jid = cli.jid()
    files = {LONGEST: b"long\n", f"sub/{LONGEST}": b"deep\n", "a.txt": b"a\n"}
    publish(swift_server, write_tree(tmp_path / "out", files), f"key-{jid}/outgoing")
    code, _, err = cli("pull", jid, str(tmp_path / "pulled"))
    assert (code, err) == (0, ""), err
    pulled = read_tree(tmp_path / "pulled")
    assert json.loads(pulled.pop(MANIFEST))["complete"] is True
    assert pulled == files
    archive = tmp_path / "saved" / ("s" * 251 + ".tar")
    archive.parent.mkdir()
    assert cli("pull", jid, "--archive", str(archive))[0] == 0
    assert [p.name for p in archive.parent.iterdir()] == [archive.name]


def test_pull_of_a_name_the_filesystem_refuses_is_one_line_and_exit_5(cli, swift_server, tmp_path):
    jid = cli.jid()
    too_long = "line\n" * 51 + "x"  # 256 bytes, and a newline that must not end the message
    connection = swift_server.connection()
    connection.put_container(f"key-{jid}")
    listed = []
    for name in ("a.txt", too_long):
        connection.put_object(f"key-{jid}", f"outgoing/{name}", b"data\n")
        md5 = hashlib.md5(b"data\n", usedforsecurity=False).hexdigest()
        listed.append({"path": name, "object": f"outgoing/{name}", "bytes": 5, "md5": md5})
    document = {"format": "pman-publisher-manifest/1", "complete": True, "files": listed}
    connection.put_object(f"key-{jid}", f"outgoing/{MANIFEST}", json.dumps(document))
    code, _, err = cli("pull", jid, str(tmp_path / "pulled"))
    assert code == 5
    assert err.startswith("pman: cannot write "), err
    assert err.count("\n") == 1, err
    assert "name too long" in err
    assert sorted(p.name for p in (tmp_path / "pulled").iterdir()) == ["a.txt"]


def test_the_console_script_reports_one_line(pman):
    script = Path(sys.executable).with_name("pman")
    result = subprocess.run(
        [str(script), "logs", "no-such-job", "--url", pman.url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stdout) == (3, "")
    assert result.stderr == "pman: 404 no job 'no-such-job'\n"
