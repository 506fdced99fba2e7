"""What a hostile client sends, over real HTTP to a pman on the test cluster with the test
Swift: names ending in a newline, fields too long for Kubernetes or Swift, bodies that would
make Python speak of itself. Each is a 400 in plain words, and nothing is created."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
import requests

from tests.support.bodies import HOSTILE_FIELDS, pfcon_request
from tests.support.data import data_pman, objects, tar_bytes
from tests.support.names import unique_name

# What an answer must never hold: Python's own words, reprs and the like.
INTERNALS = ("sys.", "recursion", "codec", "ZipInfo", " object at 0x", "Traceback", "Errno")
MANIFEST = ".publisher-manifest.json"


@pytest.fixture(scope="module")
def pman(kube_cluster, swift_server):
    with data_pman(kube_cluster, swift_server) as handle:
        yield handle


def assert_plain_words(answer: requests.Response) -> None:
    text = json.dumps(answer.json(), ensure_ascii=False)
    assert not [marker for marker in INTERNALS if marker in text], text


def jobs_named(pman, start: str) -> list[str]:
    listed = requests.get(f"{pman.url}/api/v1/_jobs/", timeout=30).json()["jobs"]
    return [job["jid"] for job in listed if job["jid"].startswith(start)]


def test_names_ending_in_a_newline_are_400_all_at_once_and_create_no_job(pman):
    jid = unique_name("newline")
    body = pfcon_request(
        jid=f"{jid}\n", image="fnndsc/pl-simplefsapp\n", env=["CHRIS_JID\n=chris-jid-42"]
    )
    response = pman.post(body)
    assert response.status_code == 400, response.text
    assert set(response.json()["message"]) == {"jid", "image", "env"}
    assert jobs_named(pman, jid) == []


@pytest.mark.parametrize(("field", "value", "words"), HOSTILE_FIELDS)
def test_each_hostile_field_is_400_naming_it(pman, field, value, words):
    jid = unique_name("hostile")
    response = pman.post(pfcon_request(**{"jid": jid, field: value}))
    assert response.status_code == 400, response.text
    message = response.json()["message"]
    assert set(message) == {field}
    assert words in message[field]
    assert_plain_words(response)
    assert jobs_named(pman, jid) == []


@pytest.mark.parametrize(
    "body",
    [
        b'{"cpu_limit": ' + b"9" * 5000 + b"}",
        b"[" * 50_000 + b"]" * 50_000,
        b'{"a": ' * 50_000 + b"1" + b"}" * 50_000,
        b'{"jid": "\xff"}',
        '{"jid": "x"}'.encode("utf-16-le")[:-1],
        b'{"jid": "\\ud800"',
    ],
    ids=["5000 digits", "deep arrays", "deep objects", "not UTF-8", "odd UTF-16", "cut short"],
)
def test_a_body_python_cannot_read_is_400_in_plain_words(pman, body):
    response = requests.post(
        f"{pman.url}/api/v1/",
        data=body,
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 400, response.text
    assert isinstance(response.json()["message"], str)
    assert_plain_words(response)


def test_the_data_routes_take_no_jid_ending_in_a_newline(pman, swift_server, containers):
    jid = containers.jid()
    container = containers.add(f"key-{jid}\n")
    connection = swift_server.connection()
    connection.put_container(container)
    # An output that looks published there: pman must not serve it under "<jid>\n".
    document = {"format": "pman-publisher-manifest/1", "complete": True, "files": []}
    connection.put_object(container, f"outgoing/{MANIFEST}", json.dumps(document).encode())

    response = requests.get(f"{pman.url}/api/v1/_data/{jid}%0A/output/", timeout=30)
    assert response.status_code == 404, response.text
    assert "no job" in response.json()["message"]

    response = requests.post(
        f"{pman.url}/api/v1/_data/{jid}%0A/input/",
        data=tar_bytes({"a.txt": b"a\n"}),
        headers={"Content-Type": "application/x-tar"},
        timeout=30,
    )
    assert response.status_code == 400, response.text
    assert "is not a job id" in response.json()["message"]
    assert objects(swift_server, container, "incoming") == {}


def test_an_encrypted_or_unreadable_zip_entry_is_named_in_plain_words(pman, containers):
    plain = _zip({"a.txt": b"a"})
    encrypted = _with_flag(plain, 0x1)
    unknown_method = _with_method(plain, 99)
    for body, problem in ((encrypted, "encrypted"), (unknown_method, "compression method")):
        response = requests.post(
            f"{pman.url}/api/v1/_data/{containers.jid()}/input/",
            data=body,
            headers={"Content-Type": "application/zip"},
            timeout=30,
        )
        assert response.status_code == 400, response.text
        message = response.json()["message"]
        assert "'a.txt'" in message
        assert problem in message
        assert_plain_words(response)


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _headers(data: bytes) -> tuple[int, int]:
    """Offsets of the (one) local file header and central directory entry."""
    return data.index(b"PK\x03\x04"), data.index(b"PK\x01\x02")


def _with_flag(data: bytes, flag: int) -> bytes:
    local, central = _headers(data)
    changed = bytearray(data)
    changed[local + 6] |= flag
    changed[central + 8] |= flag
    return bytes(changed)


def _with_method(data: bytes, method: int) -> bytes:
    local, central = _headers(data)
    changed = bytearray(data)
    changed[local + 8] = method
    changed[central + 10] = method
    return bytes(changed)
