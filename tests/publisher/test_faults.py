"""Faults in the middle of a transfer: Swift restarted, Swift answering 503, SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest

from publisher.manifest import MANIFEST_NAME
from tests.support.publisher import (
    FILES,
    PUBLISHER,
    clean_env,
    object_names,
    start_publish,
    start_publisher,
    wait_for_objects,
    wait_until_catching,
)
from tests.support.trees import write_tree
from tests.support.waiting import eventually

pytestmark = pytest.mark.fault


def start_upload(src, container, env, *extra):
    return start_publisher(
        "upload", "--json", "--threads", "2", *extra, str(src), f"swift://{container}/out", env=env
    )


def finish(process) -> tuple[int, dict, str]:
    out, err = process.communicate(timeout=120)
    return process.returncode, json.loads(out), err


@pytest.fixture(params=["upload", "publish"])
def start_sending(request, swift_server):
    """Start `publisher upload`, or `publisher publish` for a pod whose processor ended."""
    if request.param == "upload":
        return lambda src, container: start_upload(src, container, swift_server.environment())
    pod = request.getfixturevalue("ended_processor")(grace=30)
    cluster = request.getfixturevalue("kube_cluster")
    return lambda src, container: start_publish(pod, cluster, swift_server, src, container)


def test_swift_answering_503_mid_upload_is_retried_and_no_manifest_until_done(
    start_sending, many_files, swift_server, swift_container
):
    process = start_sending(many_files, swift_container)
    wait_for_objects(swift_server, swift_container, 20, process)
    swift_server.stop_server("object")  # the proxy now answers 503 to every object PUT
    try:
        stored = object_names(swift_server, swift_container)
        time.sleep(1.0)  # let the publisher meet the 503s
        assert f"out/{MANIFEST_NAME}" not in object_names(swift_server, swift_container)
        assert process.poll() is None
    finally:
        swift_server.start_server("object")
    code, summary, err = finish(process)
    assert code == 0, err
    assert summary["retries"] > 0
    assert "503" in err
    names = object_names(swift_server, swift_container)
    assert len(names) == FILES + 1
    assert f"out/{MANIFEST_NAME}" in names
    assert len(stored) < FILES


def test_swift_restarted_mid_upload_completes(
    start_sending, many_files, swift_server, swift_container
):
    process = start_sending(many_files, swift_container)
    wait_for_objects(swift_server, swift_container, 20, process)
    swift_server.restart("proxy")
    code, summary, err = finish(process)
    assert code == 0, err
    assert summary["retries"] > 0  # it did meet the restart
    names = object_names(swift_server, swift_container)
    assert len(names) == FILES + 1
    _, body = swift_server.connection().get_object(swift_container, f"out/{MANIFEST_NAME}")
    assert json.loads(body)["totals"]["files"] == FILES


def test_sigterm_ends_a_stuck_upload_promptly(many_files, swift_server, swift_container):
    swift_server.pause("proxy")  # requests now hang instead of failing
    try:
        process = start_upload(many_files, swift_container, swift_server.environment())
        wait_until_catching(process, signal.SIGTERM)
        time.sleep(0.5)  # let it reach the hanging request
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=10)
    finally:
        swift_server.resume("proxy")
    assert process.returncode == 143
    assert json.loads(out)["status"] == "interrupted"
    assert "interrupted by signal 15" in err


def test_sigterm_mid_upload_ends_without_sending_the_rest(
    many_files, swift_server, swift_container
):
    process = start_upload(many_files, swift_container, swift_server.environment())
    wait_for_objects(swift_server, swift_container, 20, process)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=10)
    assert process.returncode == 143, err
    assert json.loads(out)["status"] == "interrupted"
    names = object_names(swift_server, swift_container)
    assert len(names) < FILES  # the files still queued were not sent
    assert f"out/{MANIFEST_NAME}" not in names


@pytest.fixture
def stored_files(many_files, swift_server, swift_container):
    upload = start_upload(many_files, swift_container, swift_server.environment())
    code, _, err = finish(upload)
    assert code == 0, err
    return many_files


def start_download(container, dest, env):
    return subprocess.Popen(
        [*PUBLISHER, "download", "--json", "--threads", "2", f"swift://{container}/out", str(dest)],
        env=clean_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_files(dest, count, process) -> None:
    """Wait until the download is under way (at least `count` files in place)."""
    eventually(
        lambda: dest.is_dir() and sum(1 for _ in dest.iterdir()) >= count,
        interval=0.02,
        what="the download under way",
        alive=process,
    )


def same_tree(dest, src) -> bool:
    return sorted(p.name for p in dest.iterdir()) == sorted(p.name for p in src.iterdir()) and all(
        (dest / p.name).read_bytes() == p.read_bytes() for p in src.iterdir()
    )


def test_swift_answering_503_mid_download_is_retried(
    stored_files, tmp_path, swift_server, swift_container
):
    dest = tmp_path / "in"
    process = start_download(swift_container, dest, swift_server.environment())
    wait_for_files(dest, 20, process)
    swift_server.stop_server("object")  # the proxy now answers 503 to every object GET
    try:
        time.sleep(1.0)  # let the publisher meet the 503s
        assert process.poll() is None
    finally:
        swift_server.start_server("object")
    code, summary, err = finish(process)
    assert code == 0, err
    assert summary["retries"] > 0
    assert "503" in err
    assert same_tree(dest, stored_files)


def test_swift_restarted_mid_download_completes(
    stored_files, tmp_path, swift_server, swift_container
):
    dest = tmp_path / "in"
    process = start_download(swift_container, dest, swift_server.environment())
    wait_for_files(dest, 20, process)
    swift_server.restart("proxy")
    code, summary, err = finish(process)
    assert code == 0, err
    assert summary["retries"] > 0  # it did meet the restart
    assert summary["files"] == FILES
    assert same_tree(dest, stored_files)


def test_sigterm_mid_download_ends_and_leaves_no_partial_file(
    stored_files, tmp_path, swift_server, swift_container
):
    dest = tmp_path / "in"
    process = start_download(swift_container, dest, swift_server.environment())
    wait_for_files(dest, 20, process)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=10)
    assert process.returncode == 143, err
    assert json.loads(out)["status"] == "interrupted"
    left = sorted(p.name for p in dest.iterdir())
    assert len(left) < FILES  # the objects still queued were not fetched
    assert [name for name in left if name.startswith(".")] == []  # no partial file
    assert all((dest / name).read_bytes() == (stored_files / name).read_bytes() for name in left)


@pytest.fixture(scope="module")
def rate_limited_swift(tmp_path_factory):
    """A Swift whose proxy lets 5 object writes per second and container through, with no
    burst allowance, each waiting at most half a second for its turn: beyond that, "498
    Rate Limited"."""
    from devstack.swiftaio import SwiftAIO

    limits = {
        "container_ratelimit_0": "5",
        "max_sleep_time_seconds": "0.5",
        "rate_buffer_seconds": "0",
    }
    with SwiftAIO(tmp_path_factory.mktemp("swift-rate-limited"), ratelimit=limits) as server:
        yield server


@pytest.mark.integration  # its own Swift, with rate limits
def test_a_rate_limited_upload_is_retried_and_completes(tmp_path, rate_limited_swift):
    # Swift limits only containers that hold objects (as its cached info says, for 1 s).
    rate_limited_swift.connection().put_container("limited")
    rate_limited_swift.connection().put_object("limited", "seed", b"x")
    time.sleep(1.5)
    files = {f"f{i:02d}": bytes([i]) * 1000 for i in range(15)}
    src = write_tree(tmp_path / "out", files)
    process = start_upload(
        src, "limited", rate_limited_swift.environment(), "--threads", "8", "--retries", "10"
    )
    code, summary, err = finish(process)
    assert code == 0, err
    assert summary["retries"] > 0
    assert "498 Rate Limited" in err
    stored = rate_limited_swift.connection().get_container("limited", full_listing=True)[1]
    assert sorted(o["name"] for o in stored) == sorted(
        [f"out/{name}" for name in files] + [f"out/{MANIFEST_NAME}", "seed"]
    )


def test_publish_that_keeps_failing_exits_10_with_no_manifest(
    ended_processor, many_files, kube_cluster, swift_server, swift_container
):
    pod = ended_processor(grace=30)
    swift_server.connection().put_container(swift_container)
    swift_server.stop_server("object")  # the proxy now answers 503 to every object PUT
    try:
        process = start_publish(
            pod, kube_cluster, swift_server, many_files, swift_container, "--retries", "2"
        )
        code, summary, err = finish(process)
    finally:
        swift_server.start_server("object")
    assert code == 10, err
    assert summary["status"] == "error"
    assert "gave up after 2 tries" in err.strip().splitlines()[-1]
    assert object_names(swift_server, swift_container) == []
