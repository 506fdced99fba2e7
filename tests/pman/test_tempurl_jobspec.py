"""Job pods that hold no Swift secret (SWIFT_POD_CREDENTIALS=tempurl), as pure data: the pod
pman builds (no Secret volume, temporary URLs in the stage-in and publish containers only),
the URLs it signs for a job (each one method, one prefix, one expiry), its stage-in plans,
how the publisher reads those commands, and pman's checks of a large object's manifest."""

from __future__ import annotations

import hashlib
from pathlib import Path

import kubernetes_validate
import pytest

from pman.errors import BadRequest, Forbidden, SettingsError
from pman.jobspec import SignedAccess, build_job, build_pfcon_job
from pman.models import parse_job_request
from pman.pfconjobs import PfconJobRequest, manifest_name
from pman.settings import TEMP_URL_MARGIN, Settings
from pman.stagein import plan_document
from pman.swift import Location, Signer
from pman.tempurls import check_large_object, plan_folder, publish_access, sign_plan
from publisher.cli import build_parser
from swiftcreds.tempurl import NotATempUrl, TempUrl
from tests.support.bodies import pfcon_request

STORAGE = "https://swift.example.org/v1/AUTH_chris"
KEY = "the-account-temp-url-key-0123456789"
EXPIRES = 1_900_000_000
SIGNER = Signer(STORAGE, KEY, EXPIRES)
SERVICE = "http://pman:5010/"
SETTINGS = Settings(swift_pod_credentials="tempurl", pman_service_url=SERVICE)
PLAN = SIGNER.url("GET", "users_pman", "runs/chris-jid-42/run-1/stage-in.json")

SHARE = {"name": "share", "mountPath": "/share"}
TOKEN = {
    "name": "kube-api-access",
    "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
    "readOnly": True,
}
SECURITY = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
SIDECAR_RESOURCES = {"requests": {"cpu": "100m", "memory": "128Mi"}}


def v6_access() -> SignedAccess:
    output = Location.parse("key-chris-jid-42/outgoing")
    return publish_access(SIGNER, output, plan=PLAN, service_url=SERVICE)


def v6_job(**changes) -> dict:
    request = parse_job_request(pfcon_request(**changes))
    return build_job(request, SETTINGS, run="run-1", access=v6_access())


def pod(job: dict) -> dict:
    return job["spec"]["template"]["spec"]


def containers(job: dict) -> dict[str, dict]:
    spec = pod(job)
    return {c["name"]: c for c in spec["initContainers"] + spec["containers"]}


def url(method: str, container: str, name: str, *, prefix: bool = True) -> str:
    return SIGNER.url(method, container, name, prefix=prefix)


def test_the_pod_of_a_pman_v6_job_holds_urls_and_no_secret():
    spec = pod(v6_job())
    assert spec["initContainers"] == [
        {
            "name": "stage-in",
            "image": "pman-publisher:6.0.0",
            "command": [
                "publisher",
                "download",
                "--make-dir",
                "/share/outgoing",
                "--plan",
                PLAN,
                "/share/incoming",
            ],
            "resources": SIDECAR_RESOURCES,
            "securityContext": SECURITY,
            "terminationMessagePolicy": "FallbackToLogsOnError",
            "volumeMounts": [SHARE],
        }
    ]
    processor, publish = spec["containers"]
    assert publish == {
        "name": "publish",
        "image": "pman-publisher:6.0.0",
        "command": [
            "publisher",
            "publish",
            "--wait-container",
            "processor",
            "--run-id",
            "run-1",
            "--temp-url",
            "GET=" + url("GET", "key-chris-jid-42", "outgoing/"),
            "--temp-url",
            "DELETE=" + url("DELETE", "key-chris-jid-42", "outgoing/"),
            "--temp-url",
            "PUT=" + url("PUT", "key-chris-jid-42_segments", "outgoing/"),
            "--temp-url",
            "DELETE=" + url("DELETE", "key-chris-jid-42_segments", "outgoing/"),
            "--large-object-service",
            "http://pman:5010/api/v1/_large-objects/",
            "/share/outgoing",
            url("PUT", "key-chris-jid-42", "outgoing/"),
        ],
        "env": [
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {
                "name": "POD_NAMESPACE",
                "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
            },
        ],
        "resources": SIDECAR_RESOURCES,
        "securityContext": SECURITY,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [SHARE, TOKEN],
    }
    assert spec["volumes"] == [
        {"name": "share", "emptyDir": {}},
        {
            "name": "kube-api-access",
            "projected": pod(plain_job())["volumes"][2]["projected"],
        },
    ]
    assert processor == containers(plain_job())["processor"]
    kubernetes_validate.validate(v6_job(), "1.30", strict=True)


def plain_job() -> dict:
    """The same job with the Secret (the default)."""
    return build_job(parse_job_request(pfcon_request()), Settings(), run="run-1")


def mounts_no_secret(job: dict) -> None:
    spec = pod(job)
    assert not [volume for volume in spec["volumes"] if "secret" in volume]
    assert "swift-credentials" not in str(spec)
    assert "--credentials" not in str(spec)
    processor = containers(job)["processor"]
    assert "temp_url" not in str(processor)  # the processor sees no URL


@pytest.mark.parametrize("kind", ["fs", "ds", "ts"])
def test_a_pod_built_in_this_mode_mounts_no_secret(kind):
    mounts_no_secret(v6_job(type=kind))
    mounts_no_secret(pfcon_job())


def test_the_secret_mode_is_the_default_and_mounts_the_secret():
    assert Settings().swift_pod_credentials == "secret"
    job = build_job(parse_job_request(pfcon_request()), Settings(), run="run-1")
    assert {"name": "swift-credentials", "secret": {"secretName": "swift-credentials"}} in pod(job)[
        "volumes"
    ]


PFCON_OUTPUT = "home/alice/feeds/feed_1/pl-app_1/data"


def pfcon_job() -> dict:
    form = {
        "jid": "chris-jid-1", "entrypoint": ["python3", "app"], "auid": "alice",
        "number_of_workers": "1", "cpu_limit": "1000", "memory_limit": "200", "gpu_limit": "0",
        "image": "fnndsc/pl-app", "type": "ds", "input_dirs": ["in"], "output_dir": PFCON_OUTPUT,
    }  # fmt: skip
    plan = "users_pman/runs/chris-jid-1/run-1/stage-in.json"
    request = PfconJobRequest.parse(form).job_request(container="users", plan=plan)
    manifest = ("users_pman", manifest_name(PFCON_OUTPUT))
    access = publish_access(
        SIGNER,
        Location("users", PFCON_OUTPUT),
        plan=SIGNER.url("GET", "users_pman", plan.partition("/")[2]),
        manifest=manifest,
        service_url=SERVICE,
    )
    return build_pfcon_job(
        request, SETTINGS, run="run-1", plan=plan, manifest="/".join(manifest), access=access
    )


def parse(container: dict):
    return build_parser().parse_args(container["command"][1:])


def test_the_publisher_reads_a_pfcon_pods_urls_as_pman_means_them():
    parts = containers(pfcon_job())
    stage_in = parse(parts["stage-in"])
    assert (stage_in.plan.container, stage_in.plan.prefix) == (
        "users_pman",
        "runs/chris-jid-1/run-1/stage-in.json",
    )
    assert stage_in.plan.signed.method == "GET"
    assert stage_in.credentials is None
    publish = parse(parts["publish"])
    assert (publish.dest.container, publish.dest.prefix) == ("users", PFCON_OUTPUT)
    assert publish.dest.signed.method == "PUT"
    assert publish.manifest_to.signed.method == "PUT"
    assert (publish.manifest_to.container, publish.manifest_to.prefix) == (
        "users_pman",
        manifest_name(PFCON_OUTPUT),
    )
    scopes = {(u.method, u.container, u.name, u.prefix) for u in publish.temp_urls}
    assert scopes == {
        # No GET of CUBE's output: its earlier manifest is in the bookkeeping container.
        ("DELETE", "users", f"{PFCON_OUTPUT}/", True),
        ("PUT", "users_segments", f"{PFCON_OUTPUT}/", True),
        ("DELETE", "users_segments", f"{PFCON_OUTPUT}/", True),
        ("GET", "users_pman", manifest_name(PFCON_OUTPUT), False),
        ("DELETE", "users_pman", manifest_name(PFCON_OUTPUT), False),
    }
    assert publish.large_object_service == "http://pman:5010/api/v1/_large-objects/"
    assert publish.skip_chris_links
    assert {u.expires for u in [publish.dest.signed, *publish.temp_urls]} == {EXPIRES}


def test_the_publisher_reads_a_pman_v6_pods_urls_as_pman_means_them():
    parts = containers(v6_job())
    assert parse(parts["stage-in"]).plan.signed.storage_url == STORAGE
    publish = parse(parts["publish"])
    assert (publish.dest.container, publish.dest.prefix) == ("key-chris-jid-42", "outgoing")
    assert publish.manifest_to is None  # under the output, with its GET and DELETE
    assert publish.src == Path("/share/outgoing")


def test_urls_last_until_the_jobs_deadline_and_grace_period_are_over():
    settings = Settings(job_deadline_seconds=3600, job_grace_seconds=30)
    assert settings.temp_url_seconds == 3600 + 30 + TEMP_URL_MARGIN


def test_a_whole_container_output_is_signed_as_the_whole_container():
    access = publish_access(SIGNER, Location.parse("bucket"), plan=PLAN)
    destination = TempUrl.parse(access.destination, "PUT")
    assert (destination.container, destination.name, destination.prefix) == ("bucket", "", True)
    assert access.large_objects is None  # no PMAN_SERVICE_URL: large files go whole


# -- stage-in plans -----------------------------------------------------------------------------


def test_a_pman_v6_plan_stages_a_prefix_as_a_download_of_it_would():
    listing = [
        {"name": "in/", "bytes": 0, "hash": "d41d8cd98f00b204e9800998ecf8427e"},
        {"name": "in/a.txt", "bytes": 3, "hash": "e1"},
        {"name": "in/sub/", "bytes": 0, "hash": "d41d8cd98f00b204e9800998ecf8427e"},
        {"name": "in/sub/b", "bytes": 9, "hash": "m", "slo_etag": '"e2"'},
        {"name": "in/.publisher-manifest.json", "bytes": 10, "hash": "x"},
        {"name": "in/sub/.publisher-manifest.json", "bytes": 10, "hash": "y"},
    ]
    plan = plan_folder(listing, "in")
    assert [(f.path, f.object, f.etag, f.bytes, f.slo_etag) for f in plan.files] == [
        ("a.txt", "in/a.txt", "e1", 3, ""),
        ("sub/.publisher-manifest.json", "in/sub/.publisher-manifest.json", "y", 10, ""),
        ("sub/b", "in/sub/b", "m", 9, "e2"),
    ]


def test_a_signed_plan_holds_a_get_url_of_each_object_and_segment():
    plan = plan_folder(
        [{"name": "in/a", "bytes": 1, "hash": "e1"}, {"name": "in/big", "bytes": 9, "hash": "m",
          "slo_etag": "e2"}], "in")  # fmt: skip
    document = plan_document(
        plan, container="c", jid="j", run="r", input_dirs=["in"], output_dir="out"
    )
    segments = {"in/big": [{"name": "/c_segments/in/big/slo/0", "hash": '"s0"', "bytes": 9}]}
    signed = sign_plan(document, SIGNER, segments.__getitem__)
    assert signed["temp_urls"] == {"storage_url": STORAGE, "expires": EXPIRES}
    small, big = signed["files"]
    assert small["temp_url_sig"] == SIGNER.signature("GET", "c", "in/a")
    assert "temp_url_sig" not in big
    assert big["segments"] == [
        {
            "container": "c_segments",
            "object": "in/big/slo/0",
            "bytes": 9,
            "etag": "s0",
            "temp_url_sig": SIGNER.signature("GET", "c_segments", "in/big/slo/0"),
        }
    ]


# -- temporary URLs as text ---------------------------------------------------------------------


def test_a_temporary_url_is_read_without_its_signature_in_any_message():
    text = url("PUT", "c d", "out put/")
    parsed = TempUrl.parse(text, "put")
    assert (parsed.method, parsed.container, parsed.name, parsed.prefix) == (
        "PUT",
        "c d",
        "out put/",
        True,
    )
    assert parsed.storage_url == STORAGE
    assert parsed.covers("c d", "out put/x")
    assert not parsed.covers("c d", "out putx")
    assert parsed.url() == text
    assert parsed.signature not in repr(parsed) + parsed.describe()
    for bad, words in [
        (text.replace("temp_url_sig", "sig"), "temp_url_sig"),
        (text.replace("https://", "ftp://"), "http"),
        (text.replace("/v1/", "/v2/"), "/v1/"),
        (text.replace("temp_url_expires=", "temp_url_expires=x"), "UNIX time"),
    ]:
        with pytest.raises(NotATempUrl, match=words) as caught:
            TempUrl.parse(bad, "PUT")
        assert parsed.signature not in str(caught.value)
    with pytest.raises(NotATempUrl, match="GET, PUT, DELETE"):
        TempUrl.parse(text, "POST")


# -- pman's checks before it writes a large object's manifest -----------------------------------


def large_object_body(**changes) -> dict:
    segments = [{"path": "/c_segments/out/big/slo/0", "etag": "a" * 32, "size_bytes": 5}]
    body = {
        "object": TempUrl.parse(url("PUT", "c", "out/"), "PUT").url("out/big"),
        "segments": [url("PUT", "c_segments", "out/")],
        "manifest": segments,
        "etag": hashlib.md5(b"a" * 32).hexdigest(),
    }
    return {**body, **changes}


def check(body: dict, *, keys=(KEY,), now: float = EXPIRES - 10):
    return check_large_object(body, storage_url=STORAGE, keys=list(keys), now=now)


def test_a_large_object_is_written_when_its_urls_are_pmans():
    wanted = check(large_object_body())
    assert (wanted.container, wanted.name) == ("c", "out/big")
    assert wanted.manifest == large_object_body()["manifest"]
    # The account's second key (while it is changed) is good too.
    assert check(large_object_body(), keys=("a-new-key", KEY)).name == "out/big"


@pytest.mark.parametrize(
    ("changes", "error", "words"),
    [
        ({}, Forbidden, "expired"),  # checked at the expiry time
        (
            {"object": Signer(STORAGE, "another-key", EXPIRES).url("PUT", "c", "out/big")},
            Forbidden,
            "not good for PUT",
        ),
        (
            {"object": Signer(STORAGE, KEY, EXPIRES).url("GET", "c", "out/big")},
            Forbidden,
            "not good for PUT",
        ),
        (
            {
                "object": Signer(STORAGE.replace("chris", "other"), KEY, EXPIRES).url(
                    "PUT", "c", "o"
                )
            },
            Forbidden,
            "not of this pman's Swift account",
        ),
        (
            {"manifest": [{"path": "/c_segments/in/secret", "etag": "a" * 32, "size_bytes": 5}]},
            Forbidden,
            "not under the temporary URLs given",
        ),
        (
            {"manifest": [{"path": "/c/out/big2", "etag": "a" * 32, "size_bytes": 5}]},
            Forbidden,
            "not under the temporary URLs given",
        ),
        ({"object": url("PUT", "c", "out/")}, BadRequest, "URL of an object"),
        ({"etag": "0" * 32}, BadRequest, "not the MD5"),
        ({"segments": []}, BadRequest, "PUT URLs of the segments"),
        (
            {
                "manifest": [
                    {"path": "/c_segments/out/x", "etag": "a" * 32, "size_bytes": 5, "range": "0-1"}
                ]
            },
            BadRequest,
            "path, etag and size_bytes only",
        ),
        ({"object": "swift://c/out/big"}, BadRequest, "temporary URL"),
    ],
)
def test_a_large_object_is_refused_unless_every_url_allows_it(changes, error, words):
    now = EXPIRES + 1 if not changes else EXPIRES - 10
    with pytest.raises(error, match=words) as caught:
        check(large_object_body(**changes), now=now)
    assert SIGNER.signature("PUT", "c", "out/", prefix=True) not in str(caught.value.message)


# -- settings -----------------------------------------------------------------------------------

CREDENTIALS = {"ST_AUTH": "http://swift:8080/auth/v1.0", "ST_USER": "a:b", "ST_KEY": "k"}


def test_the_mode_and_its_settings_are_read():
    settings = Settings.from_env(
        {
            **CREDENTIALS,
            "SWIFT_POD_CREDENTIALS": "tempurl",
            "PMAN_SERVICE_URL": "http://pman.chris.svc:5010",
            "PUBLISHER_SEGMENT_SIZE": "100MiB",
        }
    )
    assert settings.tempurl_pods
    assert settings.pman_service_url == "http://pman.chris.svc:5010/"
    assert settings.publisher_segment_size == 100 << 20
    assert Settings.from_env(CREDENTIALS).swift_pod_credentials == "secret"


@pytest.mark.parametrize(
    ("environ", "words"),
    [
        ({"SWIFT_POD_CREDENTIALS": "tempurl"}, "needs pman's own Swift credentials"),
        ({**CREDENTIALS, "SWIFT_POD_CREDENTIALS": "temp"}, "expected one of secret, tempurl"),
        ({**CREDENTIALS, "PMAN_SERVICE_URL": "pman:5010"}, "http(s) URL"),
    ],
)
def test_bad_settings_of_the_mode_are_refused_naming_them(environ, words):
    with pytest.raises(SettingsError, match=words.replace("(", r"\(").replace(")", r"\)")):
        Settings.from_env(environ)


def test_in_the_volume_modes_the_mode_needs_credentials_only_for_the_pfcon_api():
    settings = Settings.from_env(
        {"STORAGE_TYPE": "host", "STOREBASE": "/data", "SWIFT_POD_CREDENTIALS": "tempurl"}
    )
    assert settings.tempurl_pods
    assert settings.swift_credentials is None
