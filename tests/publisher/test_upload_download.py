"""upload and download through the real CLI against the real Swift server."""

from __future__ import annotations

import hashlib
import json
import os
import re

import pytest

from publisher.manifest import MANIFEST_NAME
from tests.support.publisher import run_publisher
from tests.support.trees import read_tree, write_tree

MIB = 1 << 20


def md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


@pytest.fixture
def tree(tmp_path):
    files = {
        "a.txt": b"alpha\n",
        "empty": b"",
        "dir/b.bin": os.urandom(70_000),
        "dir/deeper/c name with spaces.dat": os.urandom(5_000),
        "unicodé/ü.txt": "grüße".encode(),
        "big.raw": os.urandom(3 * MIB + 12345),  # a Static Large Object at 1 MiB segments
    }
    return write_tree(tmp_path / "out", files), files


def upload(src, url, env, *extra):
    return run_publisher(
        "upload", "--json", "--segment-size", "1MiB", *extra, str(src), url, env=env
    )


def test_upload_then_download_round_trip(tree, tmp_path, swift_env, swift_server, swift_container):
    src, files = tree
    result = upload(src, f"swift://{swift_container}/job/outgoing", swift_env)
    assert result.code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["files"], summary["uploaded_files"]) == (len(files), len(files))

    conn = swift_server.connection()
    headers = conn.head_object(swift_container, "job/outgoing/big.raw")
    assert headers.get("x-static-large-object") == "True"
    _, small = conn.get_object(swift_container, "job/outgoing/dir/b.bin")
    assert small == files["dir/b.bin"]

    dest = tmp_path / "in"
    result = run_publisher(
        "download", "--json", f"swift://{swift_container}/job/outgoing", str(dest), env=swift_env
    )
    assert result.code == 0, result.stderr
    assert read_tree(dest) == files
    assert json.loads(result.stdout)["files"] == len(files)


def test_one_thread_moves_large_objects_too(tree, tmp_path, swift_env, swift_container):
    # Fewer threads than segments in flight: segment MD5s are still computed (by a
    # thread of their own) and every segment goes up and comes back.
    src, files = tree
    url = f"swift://{swift_container}/one-thread"
    result = upload(src, url, swift_env, "--threads", "1")
    assert result.code == 0, result.stderr
    dest = tmp_path / "in"
    result = run_publisher("download", "--threads", "1", url, str(dest), env=swift_env)
    assert result.code == 0, result.stderr
    assert read_tree(dest) == files


def test_rerun_skips_what_is_there_and_resends_what_changed(tree, swift_env, swift_container):
    src, _ = tree
    url = f"swift://{swift_container}/out"
    assert upload(src, url, swift_env).code == 0
    again = json.loads(upload(src, url, swift_env).stdout)
    assert again["uploaded_files"] == 0

    (src / "a.txt").write_bytes(b"changed\n")
    third = json.loads(upload(src, url, swift_env).stdout)
    assert third["uploaded_files"] == 1
    assert third["uploaded_bytes"] == len(b"changed\n")


def test_manifest_is_written_last_and_lists_every_file(
    tree, swift_env, swift_server, swift_container
):
    src, files = tree
    assert upload(src, f"swift://{swift_container}/out", swift_env).code == 0
    conn = swift_server.connection()
    _, listing = conn.get_container(swift_container, prefix="out/")
    manifest_entry = next(o for o in listing if o["name"] == f"out/{MANIFEST_NAME}")
    others = [o for o in listing if o is not manifest_entry]
    assert all(o["last_modified"] <= manifest_entry["last_modified"] for o in others)

    _, body = conn.get_object(swift_container, f"out/{MANIFEST_NAME}")
    manifest = json.loads(body)
    by_path = {f["path"]: f for f in manifest["files"]}
    assert set(by_path) == set(files)
    assert by_path["a.txt"]["md5"] == md5(files["a.txt"])
    assert by_path["big.raw"]["large_object"]["segments"] == 4
    assert manifest["totals"]["bytes"] == sum(len(d) for d in files.values())
    assert manifest["complete"] is True
    assert manifest["timings"]["seconds"] >= 0


def test_every_put_carries_its_md5(swift_server, swift_container):
    from publisher.credentials import from_environment
    from publisher.errors import IntegrityError
    from publisher.swift import SwiftStore

    store = SwiftStore(from_environment(swift_server.environment()))
    store.ensure_container(swift_container)
    with pytest.raises(IntegrityError):
        store.put_object(swift_container, "x", b"data", length=4, etag=md5(b"other"))
    store.put_object(swift_container, "x", b"data", length=4, etag=md5(b"data"))


def test_links_and_special_files_are_never_uploaded(
    tmp_path, swift_env, swift_server, swift_container, swift_credentials_file
):
    src = write_tree(tmp_path / "out", {"result.txt": b"ok"})
    (src / "creds").symlink_to(swift_credentials_file)
    (src / "passwd").symlink_to("/etc/passwd")
    (src / "linked-dir").symlink_to("/etc")
    os.mkfifo(src / "fifo")
    result = run_publisher(
        "upload",
        "--json",
        "--credentials",
        str(swift_credentials_file),
        str(src),
        f"swift://{swift_container}/out",
        env={},
    )
    assert result.code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert {s["path"] for s in summary["skipped_paths"]} == {
        "creds",
        "passwd",
        "linked-dir",
        "fifo",
    }
    conn = swift_server.connection()
    _, listing = conn.get_container(swift_container)
    assert [o["name"] for o in listing] == [f"out/{MANIFEST_NAME}", "out/result.txt"]
    _, manifest = conn.get_object(swift_container, f"out/{MANIFEST_NAME}")
    assert swift_server.key.encode() not in manifest
    assert b"root:" not in manifest


def test_download_of_an_empty_prefix(tmp_path, swift_env, swift_server, swift_container):
    swift_server.connection().put_container(swift_container)
    url = f"swift://{swift_container}/nothing"
    refused = run_publisher("download", url, str(tmp_path / "d1"), env=swift_env)
    assert refused.code == 7
    assert "nothing to download" in refused.stderr
    allowed = run_publisher("download", "--allow-empty", url, str(tmp_path / "d2"), env=swift_env)
    assert allowed.code == 0, allowed.stderr
    assert (tmp_path / "d2").is_dir()


def test_download_keeps_directory_markers_and_skips_the_manifest(
    tmp_path, swift_env, swift_server, swift_container
):
    conn = swift_server.connection()
    conn.put_container(swift_container)
    # "in/" is the marker of the prefix itself (what a "Create Folder" leaves): skipped.
    conn.put_object(swift_container, "in/", b"", content_type="application/directory")
    conn.put_object(swift_container, "in/sub/", b"", content_type="application/directory")
    conn.put_object(swift_container, "in/f", b"x")
    conn.put_object(swift_container, f"in/{MANIFEST_NAME}", b"{}")
    dest = tmp_path / "d"
    result = run_publisher("download", f"swift://{swift_container}/in", str(dest), env=swift_env)
    assert result.code == 0, result.stderr
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*")) == ["f", "sub"]


def test_download_of_a_dynamic_large_object(tmp_path, swift_env, swift_server, swift_container):
    conn = swift_server.connection()
    conn.put_container(swift_container)
    parts = [os.urandom(70_000), os.urandom(5), os.urandom(300_000)]
    for index, part in enumerate(parts):
        conn.put_object(swift_container, f"segs/movie/{index:03d}", part)
    conn.put_object(
        swift_container,
        "in/movie",
        b"",
        headers={"X-Object-Manifest": f"{swift_container}/segs/movie/"},
    )
    dest = tmp_path / "d"
    result = run_publisher(
        "download", "--json", f"swift://{swift_container}/in", str(dest), env=swift_env
    )
    assert result.code == 0, result.stderr
    assert read_tree(dest) == {"movie": b"".join(parts)}


def test_progress_lines_show_files_bytes_and_throughput(tree, swift_env, swift_container):
    src, _ = tree
    result = run_publisher(
        "upload",
        "--progress-interval",
        "0.01",
        "--segment-size",
        "1MiB",
        str(src),
        f"swift://{swift_container}/out",
        env=swift_env,
    )
    assert result.code == 0, result.stderr
    lines = result.stderr.strip().splitlines()
    # Periodic lines while it runs ("publisher: upload: ..."), then the summary.
    periodic = [line for line in lines[:-1] if line.startswith("publisher: upload: ")]
    assert periodic, lines
    # (the totals are 0 until the tree has been scanned)
    pattern = r"publisher: upload: \d/[06] files, \d+\.\d/(0\.0|3\.1) MiB, \d+\.\d MiB/s"
    assert all(re.fullmatch(pattern, line) for line in periodic), periodic
    assert any("/6 files" in line for line in periodic), periodic
    assert lines[-1].startswith("publisher: uploaded ")
    assert lines[-1].endswith(" MiB/s")
    assert "upload: 6/6 files, 3.1/3.1 MiB" in lines[-1]


def test_python_m_and_console_script_are_the_same_tool():
    import shutil
    import subprocess
    import sys

    script = shutil.which("publisher") or os.path.join(os.path.dirname(sys.executable), "publisher")
    out = subprocess.run([script, "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("publisher ")
    assert run_publisher("--version").stdout == out.stdout
