"""The data routes with Keystone v3 credentials (password, application credential) against a
real Keystone in front of the test Swift; a refused password is a 503 naming the user."""

from __future__ import annotations

import contextlib

import pytest
import requests
from swiftclient import client as swiftclient
from swiftclient.exceptions import ClientException

import swiftcreds
from tests.support.data import SAMPLE, data_pman, publish, stage_in, tar_bytes
from tests.support.names import unique_name
from tests.support.trees import read_tree, write_tree


def remove(credentials: swiftcreds.Credentials, container: str) -> None:
    conn = swiftclient.Connection(**swiftcreds.swiftclient_options(credentials, timeout=30))
    with contextlib.suppress(ClientException):
        for item in conn.get_container(container, full_listing=True)[1]:
            conn.delete_object(container, item["name"])
        conn.delete_container(container)


@pytest.mark.parametrize("kind", ["password", "application"])
def test_keystone_credentials_move_data_both_ways(
    kube_cluster, swift_server, keystone_swift, tmp_path, kind
):
    path = keystone_swift.write_credentials(tmp_path / "swift-credentials.cfg", kind=kind)
    credentials = swiftcreds.load_file(path)
    jid = unique_name("keystone")
    try:
        with data_pman(
            kube_cluster, None, swift_credentials=credentials, status_cache=False
        ) as pman:
            response = requests.post(
                f"{pman.url}/api/v1/_data/{jid}/input/",
                data=tar_bytes(SAMPLE),
                headers={"Content-Type": "application/x-tar"},
                timeout=60,
            )
            assert response.status_code == 201, response.text
            stage_in(swift_server, f"key-{jid}/incoming", tmp_path / "in", credentials=path)
            assert read_tree(tmp_path / "in") == SAMPLE

            source = write_tree(tmp_path / "out", {"result.txt": b"from keystone\n"})
            publish(swift_server, source, f"key-{jid}/outgoing", credentials=path)
            response = requests.get(f"{pman.url}/api/v1/_data/{jid}/output/", timeout=60)
            assert response.status_code == 200, response.text
            assert b"from keystone\n" in response.content
    finally:
        remove(credentials, f"key-{jid}")


def test_a_refused_keystone_password_is_503(kube_cluster, keystone_swift):
    wrong = swiftcreds.Credentials(
        "password",
        keystone_swift.auth_url,
        "not-the-password-42",
        username=keystone_swift.username,
        project_name=keystone_swift.project_name,
    )
    with data_pman(kube_cluster, None, swift_credentials=wrong, status_cache=False) as pman:
        response = requests.get(f"{pman.url}/api/v1/_data/{unique_name('x')}/output/", timeout=60)
    assert response.status_code == 503
    message = response.json()["message"]
    assert f"Keystone refused Keystone user {keystone_swift.username!r}" in message
    assert "not-the-password-42" not in message
