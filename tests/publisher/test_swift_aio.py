"""The Swift all-in-one the suite runs against: it answers, stores, and survives a restart."""

import pytest
from swiftclient.exceptions import ClientException


def test_swift_server_stores_and_lists_objects(swift_server, swift_container):
    connection = swift_server.connection()
    connection.put_container(swift_container)
    connection.put_object(swift_container, "a/b.txt", b"hello")
    _, listing = connection.get_container(swift_container)
    assert [(o["name"], o["bytes"]) for o in listing] == [("a/b.txt", 5)]


def test_swift_proxy_restart_keeps_data(swift_server, swift_container):
    connection = swift_server.connection()
    connection.put_container(swift_container)
    connection.put_object(swift_container, "kept", b"data")
    swift_server.restart("proxy")
    _, body = swift_server.connection().get_object(swift_container, "kept")
    assert body == b"data"


def test_swift_rejects_a_wrong_key(swift_server):
    from swiftclient.client import Connection

    connection = Connection(swift_server.auth_url, swift_server.user, "wrong", retries=0)
    with pytest.raises(ClientException) as caught:
        connection.head_account()
    assert caught.value.http_status == 401
