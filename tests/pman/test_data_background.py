"""Uploads that take longer than pman waits (``PMAN_UPLOAD_WAIT``): answered 202, finished
in the background, their outcome at ``GET /api/v1/_data/<jid>/input/`` for any pman of the
same Swift, and ``pman push`` waiting for it."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta

import pytest
import requests

from pman.cli import main
from pman.uploads import STATUS_CONTAINER
from tests.support.data import data_pman, objects, tar_bytes
from tests.support.trees import write_tree
from tests.support.waiting import eventually

TAR = {"Content-Type": "application/x-tar"}
MANY = {f"d{n % 7}/f{n:04d}.txt": f"file {n}\n".encode() for n in range(300)}


@pytest.fixture(scope="module")
def impatient(kube_cluster, swift_server):
    """pman that answers every upload before its files are in Swift."""
    with data_pman(kube_cluster, swift_server, upload_wait_seconds=0) as handle:
        yield handle


def input_url(pman, jid: str) -> str:
    return f"{pman.url}/api/v1/_data/{jid}/input/"


def test_a_long_upload_is_202_and_its_outcome_is_told_to_any_pman(
    impatient, kube_cluster, swift_server, containers
):
    jid = containers.jid()
    response = requests.post(
        input_url(impatient, jid), data=tar_bytes(MANY), headers=TAR, timeout=60
    )
    assert response.status_code == 202, response.text
    assert response.headers["Location"] == f"/api/v1/_data/{jid}/input/"
    accepted = response.json()
    assert (accepted["state"], accepted["files"]) == ("uploading", 300)
    assert accepted["bytes"] == sum(map(len, MANY.values()))

    def done() -> dict | None:
        status = requests.get(input_url(impatient, jid), timeout=30).json()
        return status if status["state"] != "uploading" else None

    final = eventually(done, timeout=120, what="the background upload to end")
    assert (final["state"], final["uploaded"], final["id"]) == ("done", 300, accepted["id"])
    assert objects(swift_server, f"key-{jid}", "incoming") == MANY
    # Another pman (another process or replica) of the same Swift tells the same.
    with data_pman(kube_cluster, swift_server) as other:
        assert requests.get(input_url(other, jid), timeout=30).json() == final


def test_pman_push_waits_for_an_upload_finished_in_the_background(
    impatient, swift_server, containers, tmp_path, capsys
):
    jid = containers.jid()
    write_tree(tmp_path / "input", MANY)
    code = main(["push", "--url", f"{impatient.url}/api/v1/", jid, str(tmp_path / "input")])
    out, err = capsys.readouterr()
    assert (code, err) == (0, "")
    assert "pushed 300 files" in out
    assert objects(swift_server, f"key-{jid}", "incoming") == MANY


def test_an_upload_whose_pman_stopped_is_reported_failed(impatient, swift_server, containers):
    jid = containers.jid()
    long_ago = (datetime.now(UTC) - timedelta(minutes=5)).isoformat(timespec="seconds")
    status = {
        "jid": jid, "input_dir": f"key-{jid}/incoming", "id": "abc", "state": "uploading",
        "files": 10, "bytes": 100, "uploaded": 3, "message": "", "updated": long_ago,
    }  # fmt: skip
    connection = swift_server.connection()
    connection.put_container(STATUS_CONTAINER)
    name = f"key-{jid}/incoming.json"
    connection.put_object(STATUS_CONTAINER, name, io.BytesIO(json.dumps(status).encode()))
    try:
        reported = requests.get(input_url(impatient, jid), timeout=30).json()
        assert reported["state"] == "failed"
        assert "stopped" in reported["message"]
        assert reported["uploaded"] == 3
    finally:
        connection.delete_object(STATUS_CONTAINER, name)


def test_no_upload_is_404(impatient, containers):
    response = requests.get(input_url(impatient, containers.jid()), timeout=30)
    assert response.status_code == 404
    assert "no upload" in response.json()["message"]
