"""SwiftStore's own HTTP path (keep-alive connections, buffered bodies) against real Swift."""

from __future__ import annotations

import hashlib
import io
import os

import pytest

from publisher.credentials import from_environment
from publisher.errors import ContainerNotFound, NothingToDownload
from publisher.swift import READ_CHUNK, SwiftStore, _status_error

MIB = 1 << 20


def md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


@pytest.fixture
def store(swift_server, swift_container) -> SwiftStore:
    store = SwiftStore(from_environment(swift_server.environment()))
    store.ensure_container(swift_container)
    return store


def fetch(store: SwiftStore, container: str, name: str) -> tuple[dict, list[bytes]]:
    def sink(headers, body):
        return headers, [bytes(chunk) for chunk in body]  # copied: the buffer is reused

    return store.get_object(container, name, sink)


def test_a_body_larger_than_the_buffer_arrives_whole_in_chunks(store, swift_container):
    data = os.urandom(2 * READ_CHUNK + 12345)
    store.put_object(swift_container, "big", data, length=len(data), etag=md5(data))
    headers, chunks = fetch(store, swift_container, "big")
    assert b"".join(chunks) == data
    assert len(chunks) == 3
    assert headers["etag"].strip('"') == md5(data)
    assert headers["content-length"] == str(len(data))


def test_a_reader_without_sendfile_is_sent_in_blocks(store, swift_container):
    data = os.urandom(READ_CHUNK + 7)
    store.put_object(
        swift_container, "from-reader", lambda: io.BytesIO(data), length=len(data), etag=md5(data)
    )
    assert b"".join(fetch(store, swift_container, "from-reader")[1]) == data


def test_odd_names_are_addressed_exactly(store, swift_server, swift_container):
    names = ["a b/c%d?e#f", "ünï/cødé", "x+y=z&w/v"]
    for name in names:
        store.put_object(
            swift_container, name, name.encode(), length=len(name.encode()), etag=md5(name.encode())
        )
    listed = [o["name"] for o in swift_server.connection().get_container(swift_container)[1]]
    assert sorted(listed) == sorted(names)
    for name in names:
        assert b"".join(fetch(store, swift_container, name)[1]) == name.encode()
        prefix = name.split("/")[0] + "/"
        assert [o.name for o in store.list_objects(swift_container, prefix)] == [name]


def test_listing_follows_pages(store, swift_container):
    names = [f"p/{i:02d}" for i in range(7)]
    for name in [*names, "q/other"]:
        store.put_object(swift_container, name, b"x", length=1, etag=md5(b"x"))
    store.listing_page = 3
    listing = store.list_objects(swift_container, "p/")
    assert [o.name for o in listing] == names
    assert all(o.size == 1 and o.etag == md5(b"x") for o in listing)


def test_missing_container_and_object_are_named(store, swift_container):
    with pytest.raises(ContainerNotFound):
        store.list_objects(f"{swift_container}-missing")
    with pytest.raises(NothingToDownload):
        fetch(store, swift_container, "missing")
    store.delete_object(swift_container, "missing")  # already gone: fine


def test_a_connection_the_server_closed_while_idle_is_reopened_without_a_retry(
    store, swift_server, swift_container
):
    store.put_object(swift_container, "before", b"1", length=1, etag=md5(b"1"))
    swift_server.restart("proxy")  # closes the kept-alive connection
    store.put_object(swift_container, "after", b"2", length=1, etag=md5(b"2"))
    assert b"".join(fetch(store, swift_container, "after")[1]) == b"2"
    assert store.retries == 0


def test_a_connection_reset_mid_transfer_is_retried(store, swift_server, swift_container):
    data = os.urandom(32 * MIB)  # more than socket buffers hold: the restart cuts it
    store.put_object(swift_container, "obj", data, length=len(data), etag=md5(data))
    restarted = []

    def sink(headers, body):
        received = []
        for chunk in body:
            received.append(bytes(chunk))
            if not restarted:
                restarted.append(True)
                swift_server.restart("proxy")  # cuts this response short
        return b"".join(received)

    assert store.get_object(swift_container, "obj", sink) == data
    assert store.retries >= 1


@pytest.mark.parametrize(
    ("status", "retried"),
    [
        (408, True),
        (429, True),
        (498, True),
        (499, True),
        (500, True),
        (503, True),
        (400, False),
        (403, False),
        (409, False),
        (411, False),
        (422, False),
    ],
)
def test_which_answers_are_retried(status, retried):
    transient, error = _status_error("uploading c/o", status, f"{status} Reason")
    assert transient is retried
    assert str(error).startswith("uploading c/o: ")
