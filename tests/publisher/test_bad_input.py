"""Bad input gets one clear line, a documented exit code, and loses nothing."""

from __future__ import annotations

import http.client
import json
import os
from pathlib import Path
from urllib.parse import urlparse

import pytest

from devstack.processes import free_port
from publisher.credentials import DEFAULT_PATH
from tests.support.publisher import run_publisher
from tests.support.trees import write_tree


def raw_put(swift_server, path: str, body: bytes) -> None:
    """PUT with the path sent exactly as given ('..' kept), as a hostile writer could."""
    conn = swift_server.connection()
    storage_url, token = conn.get_auth()
    url = urlparse(storage_url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    connection.request("PUT", f"{url.path}/{path}", body=body, headers={"X-Auth-Token": token})
    response = connection.getresponse()
    response.read()
    assert response.status == 201, response.status


@pytest.mark.parametrize(
    ("name", "shown"),
    [("in/../../x", "../../x"), ("in//etc/x", "/etc/x"), ("in/a//b", "a//b"), ("in/./y", "./y")],
)
def test_download_refuses_names_outside_dest_before_writing(
    tmp_path, swift_env, swift_server, swift_container, name, shown
):
    swift_server.connection().put_container(swift_container)
    swift_server.connection().put_object(swift_container, "in/good.txt", b"fine")
    raw_put(swift_server, f"{swift_container}/{name}", b"evil")
    dest = tmp_path / "share" / "incoming"
    result = run_publisher("download", f"swift://{swift_container}/in", str(dest), env=swift_env)
    assert result.code == 9
    assert shown in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not dest.exists()  # nothing written, not even the good file
    assert sorted(p.name for p in tmp_path.rglob("*")) == []


def test_download_refuses_an_absolute_name_at_the_container_root(
    tmp_path, swift_env, swift_server, swift_container
):
    swift_server.connection().put_container(swift_container)
    raw_put(swift_server, f"{swift_container}//etc/x", b"evil")
    result = run_publisher(
        "download", f"swift://{swift_container}", str(tmp_path / "d"), env=swift_env
    )
    assert result.code == 9
    assert "'/etc/x'" in result.stderr


def test_download_detects_a_corrupt_object(tmp_path, swift_env, swift_server, swift_container):
    marker = os.urandom(16).hex().encode()
    conn = swift_server.connection()
    conn.put_container(swift_container)
    conn.put_object(swift_container, "in/data", marker * 100)
    data_file = _find_data_file(swift_server.directory, marker)
    with open(data_file, "r+b") as handle:  # flip bytes on the object server's disk
        handle.write(b"CORRUPT!")
    dest = tmp_path / "d"
    result = run_publisher("download", f"swift://{swift_container}/in", str(dest), env=swift_env)
    assert result.code == 8
    assert "in/data is corrupt" in result.stderr
    assert not (dest / "data").exists()


def _find_data_file(root: Path, marker: bytes) -> Path:
    for path in (root / "srv").rglob("*.data"):
        if path.read_bytes().startswith(marker):
            return path
    raise AssertionError("object data file not found")


def test_wrong_key_is_one_line_and_exit_4(tmp_path, swift_server):
    env = swift_server.environment() | {"ST_KEY": "wrong-key-value"}
    result = run_publisher("download", "swift://c/in", str(tmp_path / "d"), env=env)
    assert result.code == 4
    assert len(result.stderr.strip().splitlines()) == 1
    assert "refused the credentials" in result.stderr
    assert "wrong-key-value" not in result.stderr


def test_unreachable_auth_url_is_one_line_and_exit_5(tmp_path):
    env = {"ST_AUTH": f"http://127.0.0.1:{free_port()}/auth/v1.0", "ST_USER": "a:b", "ST_KEY": "k"}
    result = run_publisher(
        "download", "--retries", "2", "swift://c/in", str(tmp_path / "d"), env=env
    )
    assert result.code == 5
    [line] = result.stderr.strip().splitlines()  # the retries are not shown without -v
    assert line.startswith("publisher: authenticating: cannot connect")
    assert line.endswith("(gave up after 2 tries)")


def test_verbose_names_the_credentials_and_shows_each_retry_never_the_secret(tmp_path):
    port = free_port()
    env = {
        "ST_AUTH": f"http://127.0.0.1:{port}/auth/v1.0",
        "ST_USER": "acct:someone",
        "ST_KEY": "s3cret-key",
    }
    result = run_publisher(
        "download", "-v", "--retries", "3", "swift://c/in", str(tmp_path / "d"), env=env
    )
    assert result.code == 5
    lines = result.stderr.strip().splitlines()
    assert lines[0] == (
        f"publisher: using Swift v1 user 'acct:someone' at http://127.0.0.1:{port}/auth/v1.0"
    )
    assert sum("; retrying in" in line for line in lines) == 2
    assert "s3cret-key" not in result.stderr


def test_missing_container_is_one_line_and_exit_6(tmp_path, swift_env, swift_container):
    result = run_publisher(
        "download", f"swift://{swift_container}/in", str(tmp_path / "d"), env=swift_env
    )
    assert result.code == 6
    assert result.stderr.strip() == f"publisher: container '{swift_container}' does not exist"


def test_missing_credentials_file_exit_3(tmp_path):
    result = run_publisher(
        "upload", "--credentials", str(tmp_path / "none.cfg"), str(tmp_path), "swift://c/p"
    )
    assert result.code == 3
    assert "does not exist" in result.stderr


@pytest.mark.skipif(
    DEFAULT_PATH.exists(), reason=f"{DEFAULT_PATH} exists here: the publisher would use it"
)
def test_without_credentials_it_says_where_it_looked_exit_3(tmp_path):
    result = run_publisher("upload", str(tmp_path), "swift://c/p")
    assert result.code == 3
    message = result.stderr.strip()
    assert message.startswith("publisher: no Swift credentials: ")
    assert "\n" not in message
    assert f"or provide {DEFAULT_PATH}" in message


@pytest.mark.parametrize(
    "args",
    [
        ["download", "s3://c/p", "/tmp/d"],
        ["download", "swift:///p", "/tmp/d"],
        ["download", "swift://c/a/../b", "/tmp/d"],
        ["upload", "--threads", "0", "/tmp", "swift://c/p"],
        ["upload", "--segment-size", "lots", "/tmp", "swift://c/p"],
        ["publish", "/tmp", "swift://c/p"],
    ],
)
def test_bad_arguments_exit_2(args):
    result = run_publisher(*args)
    assert result.code == 2
    assert "error:" in result.stderr


def test_upload_of_a_missing_directory_exit_2(tmp_path, swift_env, swift_container):
    result = run_publisher(
        "upload", str(tmp_path / "nope"), f"swift://{swift_container}/p", env=swift_env
    )
    assert result.code == 2
    assert "is not a directory" in result.stderr


def test_download_replaces_a_planted_link_instead_of_following_it(
    tmp_path, swift_env, swift_server, swift_container
):
    conn = swift_server.connection()
    conn.put_container(swift_container)
    conn.put_object(swift_container, "in/target", b"new content")
    conn.put_object(swift_container, "in/sub/f", b"x")
    outside = write_tree(tmp_path / "outside", {"keep": b"precious"})
    dest = tmp_path / "d"
    dest.mkdir()
    (dest / "target").symlink_to(outside / "keep")
    (dest / "sub").symlink_to(outside)
    result = run_publisher("download", f"swift://{swift_container}/in", str(dest), env=swift_env)
    assert (outside / "keep").read_bytes() == b"precious"
    assert not (outside / "f").exists()
    assert result.code == 9  # the linked directory is refused, not followed
    assert "sub" in result.stderr


def test_download_with_a_corrupt_segment_fails_naming_it(
    tmp_path, swift_env, swift_server, swift_container
):
    data = os.urandom(3 * 1024 * 1024)
    src = write_tree(tmp_path / "out", {"big": data})
    up = run_publisher(
        "upload", "--segment-size", "1MiB", str(src), f"swift://{swift_container}/o", env=swift_env
    )
    assert up.code == 0, up.stderr
    # flip bytes of the second segment on the object server's disk
    segment_file = _find_data_file(swift_server.directory, data[1024 * 1024 : 1024 * 1024 + 64])
    with open(segment_file, "r+b") as handle:
        handle.seek(1000)
        handle.write(b"CORRUPT!")
    _, segments = swift_server.connection().get_container(f"{swift_container}_segments")
    dest = tmp_path / "d"
    result = run_publisher("download", f"swift://{swift_container}/o", str(dest), env=swift_env)
    assert result.code == 8, result.stderr
    assert f"{segments[1]['name']} is corrupt" in result.stderr
    assert list(dest.iterdir()) == []  # neither the file nor its partial copy


def test_download_with_a_missing_segment_fails_naming_it(
    tmp_path, swift_env, swift_server, swift_container
):
    src = write_tree(tmp_path / "out", {"big": os.urandom(2 * 1024 * 1024 + 10)})
    up = run_publisher(
        "upload", "--segment-size", "1MiB", str(src), f"swift://{swift_container}/o", env=swift_env
    )
    assert up.code == 0, up.stderr
    conn = swift_server.connection()
    _, segments = conn.get_container(f"{swift_container}_segments")
    conn.delete_object(f"{swift_container}_segments", segments[1]["name"])
    dest = tmp_path / "d"
    result = run_publisher("download", f"swift://{swift_container}/o", str(dest), env=swift_env)
    assert result.code == 7
    assert segments[1]["name"] in result.stderr
    assert not (dest / "big").exists()


def test_a_file_name_that_is_not_utf8_is_skipped_and_reported_and_the_rest_published(
    tmp_path, swift_env, swift_server, swift_container
):
    out = write_tree(tmp_path / "out", {"good.txt": b"kept\n", "sub/also.txt": b"kept too\n"})
    (out / os.fsdecode(b"caf\xe9.txt")).write_bytes(b"latin-1 name\n")
    (out / os.fsdecode(b"dir-\xff")).mkdir()
    (out / os.fsdecode(b"dir-\xff") / "inner.txt").write_bytes(b"under a latin-1 directory\n")
    run = run_publisher(
        "upload", "--json", str(out), f"swift://{swift_container}/out", env=swift_env
    )
    assert run.code == 0, run.stderr
    summary = json.loads(run.stdout)
    assert {(s["path"], s["reason"]) for s in summary["skipped_paths"]} == {
        ("caf\\xe9.txt", "file name is not valid UTF-8"),
        ("dir-\\xff/inner.txt", "file name is not valid UTF-8"),
    }
    _, listing = swift_server.connection().get_container(swift_container, prefix="out/")
    assert sorted(o["name"] for o in listing) == [
        "out/.publisher-manifest.json",
        "out/good.txt",
        "out/sub/also.txt",
    ]
    assert "caf\\xe9.txt" in run.stderr  # the warning names it, escaped
