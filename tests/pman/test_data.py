"""The data routes over real HTTP, with the real Swift server and the test cluster: uploads
in every format land byte-exact, outputs stream back in every format, and refused uploads
leave nothing in Swift."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import tarfile
import zipfile

import jsonschema
import pytest
import requests

import swiftcreds
from tests.support.data import (
    LIMIT,
    SAMPLE,
    Containers,
    container_exists,
    data_pman,
    objects,
    publish,
    stage_in,
    tar_bytes,
    zip_bytes,
)
from tests.support.names import unique_name
from tests.support.trees import read_tree, write_tree
from tests.support.waiting import eventually

TAR = "application/x-tar"


@pytest.fixture(scope="module")
def pman(kube_cluster, swift_server):
    with data_pman(kube_cluster, swift_server) as handle:
        yield handle


def upload_url(pman, jid: str) -> str:
    return f"{pman.url}/api/v1/_data/{jid}/input/"


def output_url(pman, jid: str) -> str:
    return f"{pman.url}/api/v1/_data/{jid}/output/"


def post(pman, jid: str, body, content_type: str = TAR, **kwargs) -> requests.Response:
    headers = {"Content-Type": content_type} if content_type else {}
    return requests.post(upload_url(pman, jid), data=body, headers=headers, timeout=60, **kwargs)


def as_multipart(files: dict[str, bytes]) -> list:
    return [("files", (name, data)) for name, data in files.items()]


SMALL = {"a.txt": b"hello\n", "sub/b.txt": b"b" * 3000}
UPLOADS = {
    "tar": lambda: (SAMPLE, tar_bytes(SAMPLE), TAR),
    "tar.gz": lambda: (SAMPLE, tar_bytes(SAMPLE, mode="w:gz"), "application/gzip"),
    # Compression is recognised from the data, whatever the declared tar type.
    "tar.xz as x-tar": lambda: (SMALL, tar_bytes(SMALL, mode="w:xz", dot_prefix=False), TAR),
    "tar.bz2 as gzip": lambda: (SMALL, tar_bytes(SMALL, mode="w:bz2"), "application/gzip"),
    "zip": lambda: (SAMPLE, zip_bytes(SAMPLE), "application/zip"),
}


@pytest.mark.parametrize("kind", list(UPLOADS))
def test_archive_upload_writes_each_file_byte_exact(pman, swift_server, containers, kind):
    jid = containers.jid()
    files, body, content_type = UPLOADS[kind]()
    response = post(pman, jid, body, content_type)
    assert response.status_code == 201, response.text
    assert response.json() == {
        "jid": jid,
        "input_dir": f"key-{jid}/incoming",
        "files": len(files),
        "bytes": sum(map(len, files.values())),
    }
    assert objects(swift_server, f"key-{jid}", "incoming") == files


def test_multipart_upload_takes_paths_from_filenames(pman, swift_server, containers):
    jid = containers.jid()
    response = requests.post(upload_url(pman, jid), files=as_multipart(SAMPLE), timeout=60)
    assert response.status_code == 201, response.text
    assert objects(swift_server, f"key-{jid}", "incoming") == SAMPLE


def test_chunked_upload_streams_and_stage_in_reads_it_back(
    pman, swift_server, containers, tmp_path
):
    jid = containers.jid()
    body = tar_bytes(SAMPLE, mode="w:gz")
    chunks = (body[i : i + 65536] for i in range(0, len(body), 65536))  # no Content-Length
    response = post(pman, jid, chunks, "application/gzip")
    assert response.status_code == 201, response.text
    stage_in(swift_server, f"key-{jid}/incoming", tmp_path / "incoming")
    assert read_tree(tmp_path / "incoming") == SAMPLE


def test_upload_goes_to_the_input_dir_recorded_on_the_job(pman, swift_server, containers):
    container = containers.add(unique_name("custom"))
    job = pman.submit(
        input_dir=f"{container}/deep/in", output_dir=f"{container}/out", jid=unique_name("data")
    )
    response = post(pman, job["jid"], tar_bytes({"x.txt": b"x"}))
    assert response.status_code == 201, response.text
    assert response.json()["input_dir"] == f"{container}/deep/in"
    assert objects(swift_server, container, "deep/in") == {"x.txt": b"x"}

    response = requests.get(output_url(pman, job["jid"]), timeout=30)
    assert response.status_code == 409
    assert "not published yet" in response.json()["message"]


def bad_tar(kind: str) -> tuple[bytes, str]:
    """A tar with a good file first, then the refused entry; and that entry's name."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        good = tarfile.TarInfo("good.txt")
        good.size = 4
        archive.addfile(good, io.BytesIO(b"good"))
        name, kind_ = {
            "dotdot": ("../escape.txt", tarfile.REGTYPE),
            "nested dotdot": ("sub/../../escape.txt", tarfile.REGTYPE),
            "absolute": ("/etc/cron.d/evil", tarfile.REGTYPE),
            "empty segment": ("sub//x.txt", tarfile.REGTYPE),
            "symlink": ("link", tarfile.SYMTYPE),
            "hardlink": ("hard", tarfile.LNKTYPE),
            "fifo": ("pipe", tarfile.FIFOTYPE),
            "device": ("dev", tarfile.CHRTYPE),
            "duplicate": ("good.txt", tarfile.REGTYPE),
            "file under a file": ("good.txt/inner", tarfile.REGTYPE),
            "directory named as a file": ("good.txt", tarfile.DIRTYPE),
            "file named as a directory": ("sub", tarfile.REGTYPE),
        }[kind]
        if kind == "file named as a directory":
            archive.addfile(_directory("sub"))
        info = tarfile.TarInfo(name)
        info.type = kind_
        info.linkname = "/etc/passwd" if kind_ == tarfile.SYMTYPE else "good.txt"
        data = b"evil" if kind_ == tarfile.REGTYPE else b""
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue(), name


BAD_TAR_KINDS = [
    "dotdot",
    "nested dotdot",
    "absolute",
    "empty segment",
    "symlink",
    "hardlink",
    "fifo",
    "device",
    "duplicate",
    "file under a file",
    "directory named as a file",
    "file named as a directory",
]


def _directory(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    return info


@pytest.mark.parametrize("kind", BAD_TAR_KINDS)
def test_refused_tar_entry_is_named_and_nothing_is_written(pman, swift_server, containers, kind):
    jid = containers.jid()
    body, name = bad_tar(kind)
    response = post(pman, jid, body)
    assert response.status_code == 400, response.text
    assert repr(name) in response.json()["message"]
    assert not container_exists(swift_server, f"key-{jid}")


def zip_with_symlink() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("good.txt", b"good")
        link = zipfile.ZipInfo("link")
        link.external_attr = (0o120777) << 16  # S_IFLNK
        archive.writestr(link, "/etc/passwd")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("body", "name"),
    [
        (zip_bytes({"good.txt": b"good", "../escape.txt": b"evil"}), "../escape.txt"),
        (zip_bytes({"good.txt": b"good", "/abs.txt": b"evil"}), "/abs.txt"),
        (zip_with_symlink(), "link"),
        (zip_bytes({"d/": b"", "d": b"file"}), "d"),
        (zip_bytes({"d": b"file", "d/": b""}), "d/"),
        (zip_bytes({"a": b"file", "a/b": b"under a file"}), "a/b"),
        (zip_bytes({"a/b": b"file", "a": b"over a directory"}), "a"),
    ],
    ids=["dotdot", "absolute", "symlink", "dir then file", "file then dir", "a then a/b",
         "a/b then a"],
)  # fmt: skip
def test_refused_zip_entry_is_named_and_nothing_is_written(
    pman, swift_server, containers, body, name
):
    jid = containers.jid()
    response = post(pman, jid, body, "application/zip")
    assert response.status_code == 400, response.text
    assert repr(name) in response.json()["message"]
    assert not container_exists(swift_server, f"key-{jid}")


@pytest.mark.parametrize("name", ["../escape.txt", "/abs.txt", "a//b.txt", ""])
def test_refused_multipart_filename_is_named_and_nothing_is_written(
    pman, swift_server, containers, name
):
    jid = containers.jid()
    files = [("files", ("good.txt", b"good")), ("files", (name, b"evil"))]
    response = requests.post(upload_url(pman, jid), files=files, timeout=30)
    assert response.status_code == 400, response.text
    assert repr(name) in response.json()["message"]
    assert not container_exists(swift_server, f"key-{jid}")


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        (b"", TAR, "not a readable tar archive"),
        (b"this is not an archive" * 50, TAR, "not a readable tar archive"),
        (tar_bytes(SAMPLE)[:3000], TAR, "truncated or corrupt"),
        (zip_bytes(SAMPLE)[:-30], "application/zip", "not a readable zip file"),
        (b"--x\r\nContent-Disposition: form-data; name=f\r\n\r\nv\r\n--x--\r\n",
         "multipart/form-data; boundary=x", "is not a file"),
        (b"irrelevant", "multipart/form-data", "needs a boundary"),
    ],
    ids=["empty", "garbage", "truncated tar", "truncated zip", "plain field", "no boundary"],
)  # fmt: skip
def test_malformed_upload_is_400_and_writes_nothing(
    pman, swift_server, containers, body, content_type, expected
):
    jid = containers.jid()
    response = post(pman, jid, body, content_type)
    assert response.status_code == 400, response.text
    assert expected in response.json()["message"]
    assert not container_exists(swift_server, f"key-{jid}")


def test_unsupported_media_type_is_415(pman, containers):
    response = post(pman, containers.jid(), b"{}", "application/json")
    assert response.status_code == 415
    assert "application/x-tar" in response.json()["message"]


def too_large_tar() -> bytes:
    return tar_bytes({"big.bin": b"\0" * (LIMIT + 1)}, dot_prefix=False)


def test_body_over_the_limit_is_413_and_writes_nothing(pman, swift_server, containers):
    jid = containers.jid()
    response = post(pman, jid, too_large_tar())
    assert response.status_code == 413
    assert f"larger than {LIMIT} bytes" in response.json()["message"]
    assert not container_exists(swift_server, f"key-{jid}")


def test_chunked_body_over_the_limit_is_413_and_writes_nothing(pman, swift_server, containers):
    jid = containers.jid()
    body = too_large_tar()
    chunks = (body[i : i + 65536] for i in range(0, len(body), 65536))
    response = post(pman, jid, chunks)
    assert response.status_code == 413
    assert f"larger than {LIMIT} bytes" in response.json()["message"]
    assert not container_exists(swift_server, f"key-{jid}")


def test_files_expanding_over_the_limit_are_413_and_write_nothing(pman, swift_server, containers):
    jid = containers.jid()
    body = tar_bytes({"a.bin": b"\0" * (LIMIT // 2), "b.bin": b"\0" * LIMIT}, mode="w:gz")
    assert len(body) < LIMIT // 100  # compresses well: only the unpacked size is too large
    response = post(pman, jid, body, "application/gzip")
    assert response.status_code == 413
    assert f"add up to more than {LIMIT} bytes" in response.json()["message"]
    assert not container_exists(swift_server, f"key-{jid}")


@pytest.fixture(scope="module")
def published(swift_server, tmp_path_factory):
    """A job's output published by the real publisher (no Job: it was deleted since)."""
    jid = unique_name("data")
    source = write_tree(tmp_path_factory.mktemp("outgoing"), SAMPLE)
    publish(swift_server, source, f"key-{jid}/outgoing")
    yield jid
    handle = Containers(swift_server)
    handle.add(f"key-{jid}")
    handle.cleanup()


def unpack(body: bytes, fmt: str) -> dict[str, bytes]:
    if fmt == "zip":
        with zipfile.ZipFile(io.BytesIO(body)) as archive:
            return {name: archive.read(name) for name in archive.namelist()}
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:*") as archive:
        return {m.name: archive.extractfile(m).read() for m in archive if m.isfile()}


@pytest.mark.parametrize(
    ("fmt", "accept", "content_type"),
    [
        ("tar", None, "application/x-tar"),
        ("tgz", None, "application/gzip"),
        ("zip", None, "application/zip"),
        (None, None, "application/x-tar"),
        (None, "application/zip", "application/zip"),
    ],
)
def test_output_downloads_byte_exact_with_the_manifest(
    pman, swift_server, published, fmt, accept, content_type
):
    params = {"format": fmt} if fmt else {}
    headers = {"Accept": accept} if accept else {}
    response = requests.get(output_url(pman, published), params=params, headers=headers, timeout=60)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == content_type
    assert response.headers.get("Transfer-Encoding") == "chunked"  # streamed, never sized up
    files = unpack(response.content, "zip" if content_type == "application/zip" else "tar")
    manifest = json.loads(files.pop(".publisher-manifest.json"))
    assert files == SAMPLE
    assert manifest["complete"] is True
    assert {item["path"] for item in manifest["files"]} == set(SAMPLE)


def test_output_of_an_unknown_job_without_output_is_404(pman):
    response = requests.get(output_url(pman, unique_name("nothing")), timeout=30)
    assert response.status_code == 404
    assert "no published output" in response.json()["message"]


def test_output_without_a_complete_manifest_is_502(pman, swift_server, containers):
    jid = containers.jid()
    connection = swift_server.connection()
    connection.put_container(f"key-{jid}")
    connection.put_object(f"key-{jid}", "outgoing/.publisher-manifest.json", b'{"files": []}')
    response = requests.get(output_url(pman, jid), timeout=30)
    assert response.status_code == 502
    assert "not a complete publisher manifest" in response.json()["message"]


@pytest.mark.parametrize(
    "listed",
    ["outgoing/../../{other}/secret.txt", "/{other}/secret.txt", "elsewhere/secret.txt"],
)
def test_a_manifest_naming_objects_outside_the_output_is_502_and_serves_nothing(
    pman, swift_server, containers, listed
):
    jid, other = containers.jid(), containers.add(unique_name("other"))
    connection = swift_server.connection()
    connection.put_container(other)
    connection.put_object(other, "secret.txt", b"another job's data\n")
    connection.put_container(f"key-{jid}")
    connection.put_object(f"key-{jid}", "elsewhere/secret.txt", b"not in the output\n")
    entry = {"path": "a.txt", "object": listed.format(other=other), "bytes": 19, "md5": "x"}
    document = {"format": "pman-publisher-manifest/1", "complete": True, "files": [entry]}
    connection.put_object(
        f"key-{jid}", "outgoing/.publisher-manifest.json", json.dumps(document).encode()
    )
    response = requests.get(output_url(pman, jid), timeout=30)
    assert response.status_code == 502
    assert "is stored outside the output" in response.json()["message"]
    assert b"another job's" not in response.content
    assert b"not in the output" not in response.content


def write_output(swift_server, container: str, stored: dict[str, bytes], listed: list) -> None:
    """Objects under ``outgoing/`` and a complete manifest listing ``listed``."""
    connection = swift_server.connection()
    connection.put_container(container)
    for name, data in stored.items():
        connection.put_object(container, f"outgoing/{name}", data)
    document = {"format": "pman-publisher-manifest/1", "complete": True, "files": listed}
    connection.put_object(container, "outgoing/.publisher-manifest.json", json.dumps(document))


def entry(path: str, data: bytes, *, size: int | None = None, stored_as: str = "") -> dict:
    return {
        "path": path,
        "object": f"outgoing/{stored_as or path}",
        "bytes": len(data) if size is None else size,
        "md5": hashlib.md5(data, usedforsecurity=False).hexdigest(),
    }


A, B = b"alpha\n", b"beta\n"
INCONSISTENT = {
    "larger than stored": ({"a.txt": A}, [entry("a.txt", A, size=len(A) + 5)],
                           "says 'a.txt' has 11 bytes, but Swift holds 6"),
    "smaller than stored": ({"big.bin": b"\0" * 600_000}, [entry("big.bin", b"", size=1)],
                            "says 'big.bin' has 1 bytes, but Swift holds 600000"),
    "not stored": ({}, [entry("a.txt", A)], "lists 'a.txt', but Swift has no object"),
    "twice": ({"a.txt": A, "b.txt": B}, [entry("a.txt", A), entry("a.txt", B, stored_as="b.txt")],
              "lists a file pman cannot serve: entry 'a.txt' appears twice"),
    "file and directory": ({"a": A, "a/b": B}, [entry("a", A), entry("a/b", B)],
                           "entry 'a/b' is inside 'a', which is a file"),
    "directory and file": ({"a": A, "a/b": B}, [entry("a/b", B), entry("a", A)],
                           "entry 'a' is both a file and a directory"),
    "manifest's name": ({"x": A}, [entry(".publisher-manifest.json", A, stored_as="x")],
                        "lists '.publisher-manifest.json', the name of the manifest itself"),
}  # fmt: skip


@pytest.mark.parametrize("fmt", ["tar", "tgz", "zip"])
@pytest.mark.parametrize("case", list(INCONSISTENT))
def test_a_manifest_that_does_not_match_swift_is_502_in_json(
    pman, swift_server, containers, case, fmt
):
    jid = containers.jid()
    stored, listed, words = INCONSISTENT[case]
    write_output(swift_server, f"key-{jid}", stored, listed)
    response = requests.get(output_url(pman, jid), params={"format": fmt}, timeout=30)
    assert response.status_code == 502, response.text[:300]
    assert response.headers["Content-Type"] == "application/json"
    assert words in response.json()["message"]


def test_an_object_changed_while_streaming_cuts_the_archive_short_and_is_logged(
    pman, swift_server, containers, caplog
):
    jid = containers.jid()
    # The first file outlasts what the sockets buffer, so the second is read only once
    # the answer has begun; it changes meanwhile.
    big, small = b"\0" * (24 << 20), b"small\n"
    write_output(
        swift_server, f"key-{jid}", {"a.bin": big, "b.txt": small},
        [entry("a.bin", big), entry("b.txt", small)],
    )  # fmt: skip
    with caplog.at_level(logging.ERROR, logger="pman"):
        with requests.get(output_url(pman, jid), stream=True, timeout=60) as response:
            assert response.status_code == 200
            chunks = response.iter_content(1 << 16)
            assert next(chunks)
            swift_server.connection().put_object(
                f"key-{jid}", "outgoing/b.txt", b"changed, and longer\n"
            )
            with pytest.raises(requests.exceptions.ChunkedEncodingError):
                for _ in chunks:
                    pass

        def logged() -> list[str]:
            return [r.getMessage() for r in caplog.records if "cut short" in r.getMessage()]

        assert "b.txt" in eventually(logged)[0]


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("POST", "/api/v1/_data/Not_A_Jid/input/", 400),
        ("GET", "/api/v1/_data/Not_A_Jid/output/", 404),
        ("GET", "/api/v1/_data/some-jid/output/?format=rar", 400),
        ("PUT", "/api/v1/_data/some-jid/input/", 405),
        ("GET", "/api/v1/_data/Not_A_Jid/input/", 404),
        ("GET", "/api/v1/_data/no-upload-here/input/", 404),
    ],
)
def test_bad_requests(pman, method, path, status):
    response = requests.request(method, f"{pman.url}{path}", timeout=30)
    assert response.status_code == status
    assert response.json()["message"]


def test_openapi_documents_the_data_routes(pman, containers):
    document = requests.get(f"{pman.url}/openapi.json", timeout=30).json()
    upload = document["paths"]["/api/v1/_data/{jid}/input/"]["post"]
    assert {"application/x-tar", "application/zip", "multipart/form-data"} <= set(
        upload["requestBody"]["content"]
    )
    download = document["paths"]["/api/v1/_data/{jid}/output/"]["get"]
    assert {"200", "404", "409", "503"} <= set(download["responses"])
    schema = {
        **document["components"]["schemas"]["UploadResult"],
        "$defs": document["components"]["schemas"],
    }
    answer = post(pman, containers.jid(), tar_bytes({"x": b"x"})).json()
    jsonschema.validate(answer, schema)


def test_no_swift_configured_is_503(kube_cluster, swift_server):
    with data_pman(kube_cluster, swift_server, swift_credentials=None) as handle:
        response = post(handle, "some-jid", tar_bytes({"x": b"x"}))
        assert response.status_code == 503
        assert "SWIFT_CREDENTIALS_FILE" in response.json()["message"]
        response = requests.get(output_url(handle, "some-jid"), timeout=30)
        assert response.status_code == 503


def test_unreachable_swift_is_503(kube_cluster, swift_server, containers):
    unreachable = swiftcreds.from_environment(
        {"ST_AUTH": "http://127.0.0.1:9/auth/v1.0", "ST_USER": "a:b", "ST_KEY": "k"}
    )
    with data_pman(kube_cluster, swift_server, swift_credentials=unreachable) as handle:
        response = post(handle, containers.jid(), tar_bytes({"x": b"x"}))
        assert response.status_code == 503
        assert "cannot reach Swift" in response.json()["message"]


def test_token_is_needed_when_configured(kube_cluster, swift_server, containers):
    with data_pman(kube_cluster, swift_server, api_token="data-t0ken") as handle:
        jid = containers.jid()
        assert post(handle, jid, tar_bytes({"x": b"x"})).status_code == 401
        assert requests.get(output_url(handle, jid), timeout=30).status_code == 401
        authorized = {"Authorization": "Bearer data-t0ken", "Content-Type": TAR}
        response = requests.post(
            upload_url(handle, jid), data=tar_bytes({"x": b"x"}), headers=authorized, timeout=30
        )
        assert response.status_code == 201, response.text
