"""What pman's pfcon jobs ask of the publisher, through the real CLI against the real Swift:
``download --plan`` (exactly the planned objects, each to its planned path, each checked
against its planned ETag), and ``upload --manifest-to --skip-chris-links`` (nothing but the
files under the output prefix, ChRIS links never uploaded, an earlier output replaced)."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from tests.support.publisher import run_publisher
from tests.support.trees import read_tree, write_tree

MIB = 1 << 20
PLAN = "runs/job-1/run-1/stage-in.json"


def md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def listing(swift_server, container: str) -> dict[str, dict]:
    _, objects = swift_server.connection().get_container(container, full_listing=True)
    return {o["name"]: o for o in objects}


def entry(swift_server, container: str, name: str, path: str) -> dict:
    listed = listing(swift_server, container)[name]
    item = {"object": name, "etag": listed["hash"], "bytes": listed["bytes"], "path": path}
    if listed.get("slo_etag"):
        item["slo_etag"] = listed["slo_etag"].strip('"')
    return item


def put_plan(swift_server, container: str, **document) -> str:
    body = {"format": "pman-stage-in-plan/1", "container": container, "error": None, **document}
    connection = swift_server.connection()
    connection.put_container(f"{container}_pman")
    connection.put_object(f"{container}_pman", PLAN, json.dumps(body).encode())
    return f"swift://{container}_pman/{PLAN}"


def download(plan: str, dest, env, *extra: str):
    return run_publisher(
        "download", "--json", "--make-dir", str(dest.parent / "outgoing"), *extra,
        "--plan", plan, str(dest), env=env,
    )  # fmt: skip


@pytest.fixture
def cube(swift_server, swift_container, tmp_path, swift_env):
    """CUBE's container with a few objects, one a Static Large Object (1 MiB segments)."""
    files = {
        "home/alice/uploads/a.txt": b"alpha\n",
        "home/alice/uploads/sub/b.bin": os.urandom(70_000),
        "lib/shared/big.raw": os.urandom(3 * MIB + 5),
    }
    write_tree(tmp_path / "src", files)
    result = run_publisher(
        "upload", "--segment-size", "1MiB", str(tmp_path / "src"),
        f"swift://{swift_container}", env=swift_env,
    )  # fmt: skip
    assert result.code == 0, result.stderr
    swift_server.connection().delete_object(swift_container, ".publisher-manifest.json")
    return swift_container, files


def test_a_plan_stages_exactly_its_objects_at_their_paths(cube, swift_server, tmp_path, swift_env):
    container, files = cube
    plan = put_plan(
        swift_server,
        container,
        files=[
            entry(swift_server, container, "home/alice/uploads/a.txt", "a.txt"),
            entry(swift_server, container, "home/alice/uploads/sub/b.bin", "sub/b.bin"),
            # One object at two places (a folder linked from two places), one a large object.
            entry(swift_server, container, "lib/shared/big.raw", "one/lib_shared/big.raw"),
            entry(swift_server, container, "lib/shared/big.raw", "two/lib_shared/big.raw"),
        ],
        links=[{"link": "x.chrislink", "target": "lib/shared", "path": "one", "outcome": "staged"}],
    )
    dest = tmp_path / "share" / "incoming"
    result = download(plan, dest, swift_env)
    assert result.code == 0, result.stderr
    assert read_tree(dest) == {
        "a.txt": files["home/alice/uploads/a.txt"],
        "sub/b.bin": files["home/alice/uploads/sub/b.bin"],
        "one/lib_shared/big.raw": files["lib/shared/big.raw"],
        "two/lib_shared/big.raw": files["lib/shared/big.raw"],
    }
    assert json.loads(result.stdout)["files"] == 4
    assert oct((tmp_path / "share" / "outgoing").stat().st_mode & 0o777) == "0o777"


def test_an_empty_plan_stages_nothing_and_succeeds(
    swift_server, swift_container, tmp_path, swift_env
):
    plan = put_plan(swift_server, swift_container, files=[])
    dest = tmp_path / "share" / "incoming"
    result = download(plan, dest, swift_env)
    assert result.code == 0, result.stderr
    assert dest.is_dir()
    assert not any(dest.iterdir())


def test_an_object_changed_since_the_plan_fails_and_leaves_no_file(
    cube, swift_server, tmp_path, swift_env
):
    container, _ = cube
    planned = entry(swift_server, container, "home/alice/uploads/a.txt", "a.txt")
    swift_server.connection().put_object(container, "home/alice/uploads/a.txt", b"other\n")
    plan = put_plan(swift_server, container, files=[planned])
    dest = tmp_path / "share" / "incoming"
    result = download(plan, dest, swift_env)
    assert result.code == 8, result.stderr
    assert "does not match" in result.stderr
    assert read_tree(dest) == {}


def test_a_large_object_changed_since_the_plan_fails(cube, swift_server, tmp_path, swift_env):
    container, _ = cube
    planned = entry(swift_server, container, "lib/shared/big.raw", "big.raw")
    plan = put_plan(swift_server, container, files=[{**planned, "slo_etag": md5(b"other")}])
    result = download(plan, tmp_path / "share" / "incoming", swift_env)
    assert result.code == 8, result.stderr
    assert "changed since the job was submitted" in result.stderr


def test_a_plan_that_refuses_the_input_exits_14_with_its_reason_as_last_line(
    swift_server, swift_container, tmp_path, swift_env
):
    reason = "the ChRIS link 'in/x.chrislink' points to 'home/alice', which is this job's output"
    plan = put_plan(swift_server, swift_container, files=[], error=reason)
    dest = tmp_path / "share" / "incoming"
    result = download(plan, dest, swift_env)
    assert result.code == 14, result.stderr
    assert result.stderr.strip().splitlines()[-1] == f"publisher: {reason}"
    assert not dest.exists()


@pytest.mark.parametrize("path", ["../escaped.txt", "a/../../x", "/etc/x", "a//b", "dir/"])
def test_a_planned_path_that_leaves_the_destination_is_refused(
    cube, swift_server, tmp_path, swift_env, path
):
    container, _ = cube
    planned = entry(swift_server, container, "home/alice/uploads/a.txt", path)
    plan = put_plan(swift_server, container, files=[planned])
    dest = tmp_path / "share" / "incoming"
    result = download(plan, dest, swift_env)
    assert result.code == 9, result.stderr
    assert not (tmp_path / "escaped.txt").exists()
    assert read_tree(tmp_path / "share") == {}


def test_two_objects_for_one_path_or_a_file_in_a_file_are_refused(
    cube, swift_server, tmp_path, swift_env
):
    container, _ = cube
    a = entry(swift_server, container, "home/alice/uploads/a.txt", "x")
    b = entry(swift_server, container, "home/alice/uploads/sub/b.bin", "x/y")
    plan = put_plan(swift_server, container, files=[a, b])
    result = download(plan, tmp_path / "share" / "incoming", swift_env)
    assert result.code == 9, result.stderr
    assert "both a file and a directory" in result.stderr


def test_no_plan_or_no_plan_object_or_both_sources_are_errors(
    swift_server, swift_container, tmp_path, swift_env
):
    dest = tmp_path / "share" / "incoming"
    missing = download(f"swift://{swift_container}_pman/runs/nothing.json", dest, swift_env)
    assert missing.code == 7, missing.stderr
    assert "stage-in plan" in missing.stderr
    assert "does not exist" in missing.stderr
    connection = swift_server.connection()
    connection.put_container(swift_container)
    connection.put_object(swift_container, "not-a-plan.json", b'{"files": []}')
    wrong = download(f"swift://{swift_container}/not-a-plan.json", dest, swift_env)
    assert wrong.code == 2, wrong.stderr
    assert "is not a stage-in plan" in wrong.stderr
    both = run_publisher(
        "download", "--plan", f"swift://{swift_container}/p.json",
        f"swift://{swift_container}/in", str(dest), env=swift_env,
    )  # fmt: skip
    assert both.code == 2, both.stderr


def publish_tree(tmp_path):
    """What a plugin wrote: nested folders, a symbolic link, a ChRIS link of its own."""
    out = write_tree(
        tmp_path / "outgoing",
        {
            "result.txt": b"result\n",
            "nested/deeper/r.csv": b"a,b\n",
            "sneaky.chrislink": b"home/bob",
            "nested/also.chrislink": b"home/carol",
        },
    )
    (out / "link-to-secret").symlink_to("/etc/hostname")
    return out


def upload_to_cube(src, container, output, env, *extra):
    return run_publisher(
        "upload", "--json", "--skip-chris-links", "--run-id", "run-1",
        "--manifest-to", f"swift://{container}_pman/outputs/{output}/manifest.json",
        *extra, str(src), f"swift://{container}/{output}", env=env,
    )  # fmt: skip


def test_an_upload_for_cube_puts_nothing_but_the_files_under_the_output(
    tmp_path, swift_server, swift_container, swift_env
):
    output = "home/alice/feeds/feed_1/pl-x_1/data"
    result = upload_to_cube(publish_tree(tmp_path), swift_container, output, swift_env)
    assert result.code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["manifest"] == f"{swift_container}_pman/outputs/{output}/manifest.json"
    assert sorted(listing(swift_server, swift_container)) == [
        f"{output}/nested/deeper/r.csv",
        f"{output}/result.txt",
    ]
    _, raw = swift_server.connection().get_object(
        f"{swift_container}_pman", f"outputs/{output}/manifest.json"
    )
    manifest = json.loads(raw)
    assert (manifest["container"], manifest["prefix"], manifest["run"]) == (
        swift_container,
        output,
        "run-1",
    )
    assert [f["path"] for f in manifest["files"]] == ["nested/deeper/r.csv", "result.txt"]
    assert {s["path"]: s["reason"] for s in manifest["skipped"]} == {
        "link-to-secret": "symbolic link (not followed)",
        "sneaky.chrislink": "a ChRIS link (.chrislink): never published",
        "nested/also.chrislink": "a ChRIS link (.chrislink): never published",
    }
    assert "sneaky.chrislink" in result.stderr  # reported


def test_an_upload_for_cube_again_replaces_the_earlier_output(
    tmp_path, swift_server, swift_container, swift_env
):
    output = "home/alice/feeds/feed_1/pl-x_1/data"
    first = write_tree(tmp_path / "first", {"old.txt": b"old", "kept.txt": b"same"})
    assert upload_to_cube(first, swift_container, output, swift_env).code == 0
    # An object under the output that no manifest listed (CUBE's own) is left alone.
    swift_server.connection().put_object(swift_container, f"{output}/cubes.txt", b"cube")
    second = write_tree(tmp_path / "second", {"new.txt": b"new", "kept.txt": b"same"})
    result = upload_to_cube(second, swift_container, output, swift_env)
    assert result.code == 0, result.stderr
    assert sorted(listing(swift_server, swift_container)) == [
        f"{output}/cubes.txt",
        f"{output}/kept.txt",
        f"{output}/new.txt",
    ]


def test_an_earlier_manifest_of_another_container_deletes_nothing(
    tmp_path, swift_server, swift_container, swift_env
):
    output = "home/alice/data"
    connection = swift_server.connection()
    connection.put_container(swift_container)
    connection.put_object(swift_container, f"{output}/precious.txt", b"keep me")
    connection.put_container(f"{swift_container}_pman")
    forged = {"container": "elsewhere", "files": [{"object": f"{output}/precious.txt"}]}
    connection.put_object(
        f"{swift_container}_pman", f"outputs/{output}/manifest.json", json.dumps(forged)
    )
    src = write_tree(tmp_path / "out", {"a.txt": b"a"})
    result = upload_to_cube(src, swift_container, output, swift_env)
    assert result.code == 0, result.stderr
    assert f"{output}/precious.txt" in listing(swift_server, swift_container)
