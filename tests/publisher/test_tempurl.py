"""The publisher with temporary URLs only, no credentials, against the real Swift: a drop box
(a PUT URL alone), an output that replaces the earlier one (with GET and DELETE URLs), a
rerun that skips what is there (a HEAD through the signed prefix), large files as Static
Large Objects whose manifest pman writes, a stage-in plan that holds its objects' URLs, and
the clear end of a URL that has expired or that Swift refuses."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from pman.stagein import plan_document
from pman.tempurls import LARGE_OBJECTS_ROUTE, plan_folder, sign_plan, write_plan
from publisher.manifest import MANIFEST_NAME
from tests.support.names import unique_name
from tests.support.pman_cluster import running_pman
from tests.support.publisher import object_names, run_publisher
from tests.support.swift import delete_container
from tests.support.tempurls import Account, at, send, tempauth_account
from tests.support.trees import read_tree, write_tree

MIB = 1 << 20


@pytest.fixture(scope="module")
def account(swift_server) -> Account:
    return tempauth_account(swift_server)


@pytest.fixture
def container(account):
    name = unique_name("drop")
    connection = account.connection()
    for each in (name, f"{name}_segments"):  # pman creates them for a job's pod
        connection.put_container(each)
    yield name
    for each in (name, f"{name}_segments", f"{name}_pman"):
        delete_container(connection, each)


@pytest.fixture(scope="module")
def service(kube_cluster, account):
    """pman's large-object service (a pman with the account's credentials)."""
    settings = {"swift_credentials": account.credentials, "status_cache": False}
    with running_pman(kube_cluster, **settings) as handle:
        yield f"{handle.url}/{LARGE_OBJECTS_ROUTE}"


def upload(src, destination: str, *options: str) -> object:
    return run_publisher("upload", "--json", "--progress-interval", "0", *options, str(src),
                         destination)  # fmt: skip


def output_urls(account: Account, container: str, prefix: str = "out/", **kw) -> list[str]:
    """The options of a job's publish container besides its destination, as pman writes them."""
    signer = account.signer(**kw)
    return [
        "--temp-url", "GET=" + signer.url("GET", container, prefix, prefix=True),
        "--temp-url", "DELETE=" + signer.url("DELETE", container, prefix, prefix=True),
        "--temp-url", "PUT=" + signer.url("PUT", f"{container}_segments", prefix, prefix=True),
        "--temp-url", "DELETE=" + signer.url("DELETE", f"{container}_segments", prefix,
                                             prefix=True),
    ]  # fmt: skip


def test_a_drop_box_takes_files_with_a_put_url_alone(tmp_path, account, container, swift_server):
    drop = account.url("PUT", container, "drop/", prefix=True)
    src = write_tree(tmp_path / "out", {"a.txt": b"a", "sub/b.txt": b"b" * 5000})
    os.symlink("/etc/hostname", src / "link")  # never followed
    first = upload(src, drop)
    assert first.code == 0, first.stderr
    summary = json.loads(first.stdout)
    assert (summary["container"], summary["prefix"], summary["files"]) == (container, "drop", 2)
    assert summary["skipped_paths"][0]["path"] == "link"
    names = object_names(swift_server, container)
    assert names == ["drop/.publisher-manifest.json", "drop/a.txt", "drop/sub/b.txt"]
    # Without GET and DELETE, a second upload overwrites, file by file, and replaces nothing.
    (src / "a.txt").unlink()
    second = upload(src, drop)
    assert second.code == 0, second.stderr
    assert "an earlier output is overwritten" in second.stderr
    assert object_names(swift_server, container) == names
    assert account.signer().signature("PUT", container, "drop/", prefix=True) not in (
        first.stdout + first.stderr + second.stderr
    )


def test_a_drop_box_signed_with_the_swift_command_as_publisher_readme_shows(
    tmp_path, account, container, swift_server
):
    key = account.signer().key  # the account's key (pman sets one when there is none)
    swift = Path(sys.executable).with_name("swift")
    signed = subprocess.run(
        [str(swift), "tempurl", "--prefix-based", "PUT", "1d",
         f"{account.storage_url}/{container}/from-bob/", key],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    url = signed.stdout.strip()
    assert url.startswith("http"), url
    assert "temp_url_prefix=from-bob" in url
    src = write_tree(tmp_path / "results", {"scan.nii": b"nii", "notes/n.txt": b"n"})
    result = upload(src, url)
    assert result.code == 0, result.stderr
    assert object_names(swift_server, container) == [
        f"from-bob/{MANIFEST_NAME}",
        "from-bob/notes/n.txt",
        "from-bob/scan.nii",
    ]
    # Write-only: the same URL reads nothing back.
    assert send("GET", at(url, "from-bob/scan.nii")).status_code == 401


def test_an_output_replaces_the_earlier_one_and_a_rerun_skips_what_is_there(
    tmp_path, account, container, service, swift_server
):
    destination = account.url("PUT", container, "out/", prefix=True)
    big = os.urandom(2 * MIB + 123)
    src = write_tree(tmp_path / "out", {"a.txt": b"a", "big.bin": big, "gone.txt": b"old"})
    options = ["--segment-size", "1MiB", "--large-object-service", service]
    first = upload(src, destination, *output_urls(account, container), *options)
    assert first.code == 0, first.stderr
    connection = account.connection()
    headers, body = connection.get_object(container, "out/big.bin")
    assert headers["x-static-large-object"] == "True"
    assert body == big
    segments = object_names(swift_server, f"{container}_segments")
    assert len(segments) == 3

    again = upload(src, destination, *output_urls(account, container), *options)
    assert again.code == 0, again.stderr
    assert json.loads(again.stdout)["uploaded_files"] == 0  # each looked up by HEAD

    (src / "gone.txt").unlink()
    (src / "big.bin").unlink()
    (src / "new.txt").write_bytes(b"new")
    third = upload(src, destination, *output_urls(account, container), *options)
    assert third.code == 0, third.stderr
    assert object_names(swift_server, container) == [
        f"out/{MANIFEST_NAME}",
        "out/a.txt",
        "out/new.txt",
    ]
    assert object_names(swift_server, f"{container}_segments") == []  # deleted one by one
    manifest = json.loads(connection.get_object(container, f"out/{MANIFEST_NAME}")[1])
    assert sorted(f["path"] for f in manifest["files"]) == ["a.txt", "new.txt"]


def test_without_the_large_object_service_a_large_file_goes_whole(tmp_path, account, container):
    big = os.urandom(MIB + 7)
    src = write_tree(tmp_path / "out", {"big.bin": big})
    result = upload(src, account.url("PUT", container, "out/", prefix=True), "--segment-size",
                    "256KiB")  # fmt: skip
    assert result.code == 0, result.stderr
    headers, body = account.connection().get_object(container, "out/big.bin")
    assert "x-static-large-object" not in headers
    assert body == big


def test_without_urls_for_the_segments_a_large_file_is_refused_before_anything_is_sent(
    tmp_path, account, container, service, swift_server
):
    src = write_tree(tmp_path / "out", {"big.bin": os.urandom(MIB + 7)})
    destination = account.url("PUT", container, "out/", prefix=True)
    result = upload(src, destination, "--segment-size", "512KiB", "--large-object-service",
                    service)  # fmt: skip
    assert result.code == 2, result.stderr
    assert f"{container}_segments/out/big.bin/slo/" in result.stderr
    assert "no temporary URL given allows" in result.stderr
    assert object_names(swift_server, container) == []
    assert object_names(swift_server, f"{container}_segments") == []


def test_the_large_object_service_writes_only_what_urls_it_signed_allow(
    account, container, service, swift_server
):
    connection = account.connection()
    segment = b"s" * 1000
    etag = hashlib.md5(segment).hexdigest()
    connection.put_object(f"{container}_segments", "out/big/0", segment)
    connection.put_container(f"{container}_pman")
    connection.put_object(f"{container}_pman", "private", b"another's data")
    signer = account.signer()

    def body(signer=signer, path=f"/{container}_segments/out/big/0") -> dict:
        return {
            "object": signer.url("PUT", container, "out/", prefix=True).replace(
                "/out/?", "/out/big?"
            ),
            "segments": [signer.url("PUT", f"{container}_segments", "out/", prefix=True)],
            "manifest": [{"path": path, "etag": etag, "size_bytes": len(segment)}],
            "etag": hashlib.md5(etag.encode()).hexdigest(),
        }

    forged = type(signer)(signer.storage_url, "a key that is not the account's", signer.expires)
    refused = requests.post(service, json=body(forged), timeout=30)
    assert refused.status_code == 403, refused.text
    assert "signature is not good for PUT" in refused.json()["message"]
    elsewhere = requests.post(service, json=body(path=f"/{container}_pman/private"), timeout=30)
    assert elsewhere.status_code == 403, elsewhere.text
    assert "is not under the temporary URLs given for them" in elsewhere.json()["message"]
    assert object_names(swift_server, container) == []

    written = requests.post(service, json=body(), timeout=30)
    assert written.status_code == 201, written.text
    headers, data = connection.get_object(container, "out/big")
    assert (headers["x-static-large-object"], data) == ("True", segment)


def test_an_expired_url_ends_the_command_with_code_15_and_one_line(tmp_path, account, container):
    src = write_tree(tmp_path / "out", {"a.txt": b"a"})
    destination = account.url("PUT", container, "out/", prefix=True, seconds=-60)  # expired
    result = upload(src, destination)
    assert result.code == 15
    (line,) = result.stderr.strip().splitlines()
    assert "has expired: ask for a new one" in line
    assert json.loads(result.stdout)["exit_code"] == 15


def test_a_url_swift_refuses_ends_the_command_with_code_15_and_one_line(
    tmp_path, account, container, swift_server
):
    src = write_tree(tmp_path / "out", {"a.txt": b"a"})
    signer = account.signer()
    forged = type(signer)(signer.storage_url, "a key that is not the account's", signer.expires)
    result = upload(src, forged.url("PUT", container, "out/", prefix=True))
    assert result.code == 15, result.stderr
    # A drop box's notice (no earlier output can be replaced), then the error, one line.
    notice, line = result.stderr.strip().splitlines()
    assert "an earlier output is overwritten" in notice
    assert "Swift refused the temporary URL" in line
    assert "401" in line
    assert object_names(swift_server, container) == []


def test_a_stage_in_plan_with_its_objects_urls_stages_them_and_only_them(
    tmp_path, account, container, swift_server
):
    connection = account.connection()
    big = os.urandom(2 * MIB + 5)
    inputs = write_tree(tmp_path / "in", {"a.txt": b"a", "d/b.txt": b"b", "big.bin": big})
    # The input as a user puts it there, with credentials; its large file an SLO.
    env_upload = run_publisher(
        "upload", "--segment-size", "1MiB", str(inputs), f"swift://{container}/in",
        env=swift_server.environment(),
    )  # fmt: skip
    assert env_upload.code == 0, env_upload.stderr
    connection.put_object(container, "other/secret.txt", b"not planned")
    with account.store.session() as swift:
        listing = swift.list_objects(container, "in/")
        signer = swift.signer(seconds=600)
        document = plan_document(
            plan_folder(listing, "in"), container=container, jid="j", run="r",
            input_dirs=["in"], output_dir="out",
        )  # fmt: skip
        signed = sign_plan(document, signer, lambda name: swift.slo_segments(container, name))
        name = write_plan(swift, f"{container}_pman", "runs/j/r/stage-in.json", signed)
    plan = signer.url("GET", f"{container}_pman", name)
    dest = tmp_path / "incoming"
    result = run_publisher("download", "--plan", plan, str(dest))
    assert result.code == 0, result.stderr
    assert read_tree(dest) == {"a.txt": b"a", "d/b.txt": b"b", "big.bin": big}
    # The plan's URLs read its objects, nothing else: not a listing, not another object.
    listing = run_publisher("download", signer.url("GET", container, "", prefix=True),
                            str(tmp_path / "all"))  # fmt: skip
    assert listing.code == 2
    assert "cannot list container" in listing.stderr
    planned = {entry["object"] for entry in signed["files"]}
    assert planned == {"in/a.txt", "in/d/b.txt", "in/big.bin"}
    assert "other/secret.txt" not in json.dumps(signed)
