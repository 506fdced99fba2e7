"""The temporary URLs pman signs for job pods, against the real Swift, with tempauth and with
Keystone: pman sets the account's key when it has none (and never logs it) and reads it back
when it has one; a URL allows its method under its prefix of its container until it expires,
and nothing else (no other prefix, container or method, no listing); and what else a
publisher holding only such URLs can and cannot do on this Swift."""

from __future__ import annotations

import hashlib
import json
import logging

import pytest

from pman.swift import TEMP_URL_KEYS, Signer
from tests.support.names import unique_name
from tests.support.swift import delete_container
from tests.support.tempurls import Account, at, keystone_account, send, tempauth_account
from tests.support.waiting import eventually

KEY = TEMP_URL_KEYS[0]

# The accounts are fixtures looked up by parameter: the tier cannot be read from the names.
pytestmark = pytest.mark.integration


@pytest.fixture(params=["tempauth", "keystone"])
def account(request, tmp_path_factory) -> Account:
    if request.param == "tempauth":
        return tempauth_account(request.getfixturevalue("swift_server"))
    keystone = request.getfixturevalue("keystone_swift")
    return keystone_account(keystone, tmp_path_factory.mktemp("keystone"))


@pytest.fixture
def container(account):
    name = unique_name("tempurl")
    connection = account.connection()
    connection.put_container(name)
    connection.put_object(name, "in/a.txt", b"input a")
    connection.put_object(name, "in2/b.txt", b"not the job's")
    yield name
    for each in (name, f"{name}_segments", f"{name}-other"):
        delete_container(connection, each)


def test_pman_sets_the_account_key_when_absent_reads_it_back_and_never_logs_it(account, caplog):
    connection = account.connection()
    previous = connection.head_account().get(KEY.lower())
    connection.post_account({KEY: ""})  # no key: pman sets one
    caplog.set_level(logging.DEBUG)
    try:
        first = account.signer()
        key = connection.head_account()[KEY.lower()]
        assert first.key == key
        assert len(key) >= 32
        assert account.signer().key == key  # read back, not set again
        assert "pman set one" in caplog.text
        connection.post_account({KEY: "a-key-set-by-the-operator-0123456789"})
        assert account.signer().key == "a-key-set-by-the-operator-0123456789"
        assert key not in caplog.text
        assert "a-key-set-by-the-operator" not in caplog.text
    finally:
        connection.post_account({KEY: previous or ""})


def test_a_url_allows_its_method_under_its_prefix_and_nothing_else(account, container):
    signer = account.signer()
    get = signer.url("GET", container, "in/", prefix=True)
    put = signer.url("PUT", container, "out/", prefix=True)
    delete = signer.url("DELETE", container, "out/", prefix=True)
    data = b"published"
    etag = hashlib.md5(data).hexdigest()

    assert send("GET", at(get, "in/a.txt")).content == b"input a"
    assert send("PUT", at(put, "out/x.txt"), data=data, headers={"ETag": etag}).status_code == 201
    # HEAD is allowed by a GET or a PUT signature: the publisher's skip-if-same-ETag.
    assert send("HEAD", at(get, "in/a.txt")).status_code == 200
    head = send("HEAD", at(put, "out/x.txt"))
    assert (head.status_code, head.headers["Etag"]) == (200, etag)
    assert send("HEAD", at(put, "out/missing")).status_code == 404
    # Another prefix, another container, another method, a listing: 401.
    assert send("GET", at(get, "in2/b.txt")).status_code == 401
    assert send("GET", at(get, "in")).status_code == 401
    assert send("PUT", at(put, "in/a.txt"), data=b"x").status_code == 401
    other = at(get, "in/a.txt").replace(f"/{container}/", f"/{container}-other/")
    account.connection().put_container(f"{container}-other")
    account.connection().put_object(f"{container}-other", "in/a.txt", b"other")
    assert send("GET", other).status_code == 401
    assert send("GET", at(put, "out/x.txt")).status_code == 401
    assert send("DELETE", at(put, "out/x.txt")).status_code == 401
    assert send("DELETE", at(get, "in/a.txt")).status_code == 401
    listing = get.replace("/in/?", "?") + "&prefix=in/&format=json"
    assert send("GET", listing).status_code == 401
    # DELETE with its own signature; then it is gone.
    assert send("DELETE", at(delete, "out/x.txt")).status_code == 204
    assert send("DELETE", at(delete, "out/x.txt")).status_code == 404
    # A signature of another key is refused, even in scope.
    forged = Signer(signer.storage_url, "not-the-account-key", signer.expires)
    assert (
        send("GET", at(forged.url("GET", container, "in/", prefix=True), "in/a.txt")).status_code
        == 401
    )


def test_a_url_works_no_longer_once_it_has_expired(account, container):
    short = account.signer(seconds=2)
    url = at(short.url("GET", container, "in/", prefix=True), "in/a.txt")
    assert send("GET", url).status_code == 200
    eventually(
        lambda: send("GET", url).status_code == 401,
        timeout=15,
        interval=0.5,
        what="the URL refused once expired",
    )


def test_what_a_publisher_holding_only_urls_can_and_cannot_do(account, container):
    """The facts the publisher's design rests on (publisher/README.rst): on this Swift a
    PUT URL cannot write a Static Large Object's manifest (the query is dropped: Swift
    checks the ETag against the body and would store the JSON as a plain object), nor a
    Dynamic one; a GET URL cannot read an SLO's manifest; a DELETE URL deletes an SLO's
    manifest only. An SLO whose segments are in ``<container>_segments`` is served through
    a URL signed with the account's key; and X-Delete-After passes through a PUT URL."""
    connection = account.connection()
    segments = f"{container}_segments"
    connection.put_container(segments)
    parts = [b"a" * 1000, b"b" * 10]
    manifest = []
    for index, part in enumerate(parts):
        name = f"out/big/slo/{index:08d}"
        connection.put_object(segments, name, part)
        manifest.append(
            {
                "path": f"/{segments}/{name}",
                "etag": hashlib.md5(part).hexdigest(),
                "size_bytes": len(part),
            }
        )
    body = json.dumps(manifest).encode()
    slo_etag = hashlib.md5("".join(m["etag"] for m in manifest).encode()).hexdigest()
    signer = account.signer()
    put = signer.url("PUT", container, "out/", prefix=True)
    get = signer.url("GET", container, "out/", prefix=True)

    refused = send(
        "PUT", at(put, "out/big") + "&multipart-manifest=put", data=body, headers={"ETag": slo_etag}
    )
    assert refused.status_code == 422  # the body checked as a plain object's
    dlo = send(
        "PUT", at(put, "out/dlo"), data=b"", headers={"X-Object-Manifest": f"{segments}/out/"}
    )
    assert dlo.status_code == 400
    assert "X-Object-Manifest" in dlo.text

    connection.put_object(container, "out/big", body, query_string="multipart-manifest=put")
    whole = send("GET", at(get, "out/big"))
    assert (whole.status_code, whole.content) == (200, b"".join(parts))
    assert send("GET", at(get, "out/big") + "&multipart-manifest=get").content == b"".join(parts)
    ranged = send("GET", at(get, "out/big"), headers={"Range": "bytes=998-1001"})
    assert (ranged.status_code, ranged.content) == (206, b"aabb")

    delete = signer.url("DELETE", container, "out/", prefix=True)
    assert send("DELETE", at(delete, "out/big") + "&multipart-manifest=delete").status_code == 204
    left = [o["name"] for o in connection.get_container(segments)[1]]
    assert left == [f"out/big/slo/{i:08d}" for i in range(len(parts))]  # segments stay

    expiring = send("PUT", at(put, "out/soon"), data=b"s", headers={"X-Delete-After": "1"})
    assert expiring.status_code == 201
    eventually(
        lambda: send("HEAD", at(get, "out/soon")).status_code == 404,
        timeout=15,
        interval=0.5,
        what="the object gone after X-Delete-After",
    )
