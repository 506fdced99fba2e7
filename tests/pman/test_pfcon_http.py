"""The pfcon API over real HTTP where no job runs: login and tokens (each 401 message, bad
tokens), health, server info, form bodies and their validation, the copy, upload and delete
jobs, its base and its being off. Kubernetes and Swift are ports nothing listens on, so any
request that gets that far answers 503, and a refused one never asks them."""

from __future__ import annotations

import logging
import time
import warnings

import jwt
import pytest
import requests

import swiftcreds
from pman.app import create_app
from pman.errors import SettingsError
from pman.settings import Settings
from tests.support.pman_server import pman_server, unreachable_kubeconfig

USER, PASSWORD = "cube", "cube-password-1234"
KEY = "k" * 40
BASE = "/pfcon/api/v1/"
DAY = 86400  # tokens made at collection must outlive a whole run of the suite
AUTH_URL = "http://127.0.0.1:9/auth/v1.0"
SERVER_INFO = {
    "server_version": "6.0.0",
    "pfcon_innetwork": True,
    "storage_env": "swift",
    "requires_copy_job": False,
    "requires_upload_job": False,
    "container_env": "kubernetes",
    "compute_volume_type": "emptyDir",
    "swift_auth_url": AUTH_URL,
}
# CUBE's real request (2026-06), as python-pfconclient sends it.
CUBE_FORM = [
    ("entrypoint", "python3"),
    ("entrypoint", "/usr/local/bin/simplefsapp"),
    ("args", "--greeting"),
    ("args", "hi from CUBE"),
    ("auid", "alice"),
    ("number_of_workers", "1"),
    ("cpu_limit", "1000"),
    ("memory_limit", "200"),
    ("gpu_limit", "0"),
    ("image", "fnndsc/pl-simplefsapp"),
    ("type", "fs"),
    ("env", "CHRIS_JID=chris-jid-1"),
    ("env", "CHRIS_PLG_INST_ID=1"),
    ("input_dirs", "root/data/squashEmptyDir"),
    ("output_dir", "home/alice/feeds/feed_1/pl-simplefsapp_1/data"),
    ("jid", "chris-jid-1"),
]


def settings_for(kubeconfig, **changes) -> Settings:
    credentials = swiftcreds.from_environment(
        {"ST_AUTH": AUTH_URL, "ST_USER": "test:tester", "ST_KEY": "testing"}
    )
    return Settings(
        kubeconfig=str(kubeconfig),
        status_cache=False,
        max_body_bytes=64 * 1024,
        swift_credentials=credentials,
        pfcon_user=USER,
        pfcon_password=PASSWORD,
        pfcon_secret_key=KEY,
    ).replace(**changes)


@pytest.fixture(scope="module")
def kubeconfig(tmp_path_factory):
    return unreachable_kubeconfig(tmp_path_factory.mktemp("kube"))


@pytest.fixture(scope="module")
def pfcon(kubeconfig):
    with pman_server(settings_for(kubeconfig, api_token="pman-own-token")) as (url, app):
        yield f"{url}{BASE}", app


def token(**claims) -> str:
    return jwt.encode({"pfcon_user": USER, "exp": time.time() + DAY, **claims}, KEY, "HS256")


def auth(value: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {value or token()}"}


def kube_requests(app) -> int:
    return app.extensions["pman"].metrics.kube_requests()


# -- login, tokens ---------------------------------------------------------------------------


def test_health_answers_without_a_token(pfcon):
    url, _ = pfcon
    response = requests.get(f"{url}health/", timeout=10)
    assert (response.status_code, response.json()) == (200, {"health": "OK"})


@pytest.mark.parametrize("form", [False, True], ids=["json", "form"])
def test_login_gives_a_two_day_hs256_token(pfcon, form):
    url, _ = pfcon
    body = {"pfcon_user": USER, "pfcon_password": PASSWORD}
    response = requests.post(
        f"{url}auth-token/", **({"data": body} if form else {"json": body}), timeout=10
    )
    assert response.status_code == 200, response.text
    issued = response.json()["token"]
    assert jwt.get_unverified_header(issued)["alg"] == "HS256"
    claims = jwt.decode(issued, KEY, algorithms=["HS256"])
    assert claims["pfcon_user"] == USER
    assert abs(claims["exp"] - (time.time() + 2 * 86400)) < 60
    assert requests.get(f"{url}pluginjobs/", headers=auth(issued), timeout=10).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"pfcon_user": USER, "pfcon_password": "wrong"},
        {"pfcon_user": "someone", "pfcon_password": PASSWORD},
        {"pfcon_user": "", "pfcon_password": ""},
    ],
)
def test_wrong_credentials_are_400_as_pfcon_says(pfcon, body):
    url, _ = pfcon
    response = requests.post(f"{url}auth-token/", json=body, timeout=10)
    assert response.status_code == 400
    assert response.json() == {"message": "Unable to log in with provided credentials."}


def test_missing_credentials_name_each_field(pfcon):
    url, _ = pfcon
    response = requests.post(f"{url}auth-token/", json={}, timeout=10)
    assert response.status_code == 400
    assert set(response.json()["message"]) == {"pfcon_user", "pfcon_password"}


ROUTES = [
    ("GET", "pluginjobs/"),
    ("POST", "pluginjobs/"),
    ("GET", "pluginjobs/chris-jid-1/"),
    ("DELETE", "pluginjobs/chris-jid-1/"),
    ("GET", "pluginjobs/chris-jid-1/file/?job_output_path=home/a"),
    ("GET", "copyjobs/"),
    ("POST", "copyjobs/"),
    ("GET", "uploadjobs/"),
    ("DELETE", "uploadjobs/chris-jid-1/"),
    ("GET", "deletejobs/"),
    ("POST", "deletejobs/"),
    ("GET", "deletejobs/chris-jid-1/"),
    ("DELETE", "deletejobs/chris-jid-1/"),
]
EXPIRED = jwt.encode({"pfcon_user": USER, "exp": time.time() - 10}, KEY, "HS256")
UNSIGNED = jwt.encode({"pfcon_user": USER, "exp": time.time() + DAY}, None, "none")
WRONG_KEY = jwt.encode({"pfcon_user": USER, "exp": time.time() + DAY}, "x" * 40, "HS256")
with warnings.catch_warnings():  # a key too short for HS512: the point is its other algorithm
    warnings.simplefilter("ignore")
    HS512 = jwt.encode({"pfcon_user": USER, "exp": time.time() + DAY}, KEY, "HS512")
NO_EXP = jwt.encode({"pfcon_user": USER}, KEY, "HS256")
OTHER_USER = jwt.encode({"pfcon_user": "mallory", "exp": time.time() + DAY}, KEY, "HS256")
BAD_TOKENS = [
    ({}, "Missing authorization header."),
    ({"Authorization": ""}, "Missing authorization header."),
    ({"Authorization": f"Token {token()}"}, "Invalid authorization header."),
    ({"Authorization": f"bearer {token()}"}, "Invalid authorization header."),
    ({"Authorization": "Bearer"}, "Invalid authorization header."),
    (auth(EXPIRED), "Expired authorization token."),
    (auth(UNSIGNED), "Invalid authorization token."),
    (auth(UNSIGNED.rsplit(".", 1)[0] + "."), "Invalid authorization token."),
    (auth(WRONG_KEY), "Invalid authorization token."),
    (auth(HS512), "Invalid authorization token."),
    (auth(NO_EXP), "Invalid authorization token."),
    (auth(OTHER_USER), "Invalid authorization token."),
    (auth("not.a.jwt"), "Invalid authorization token."),
    ({"Authorization": "Bearer pman-own-token"}, "Invalid authorization token."),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize(("headers", "message"), BAD_TOKENS)
def test_every_route_but_health_and_login_wants_a_good_token(pfcon, method, path, headers, message):
    url, app = pfcon
    before = kube_requests(app)
    response = requests.request(method, f"{url}{path}", headers=headers, timeout=10)
    assert response.status_code == 401, response.text
    assert response.json() == {"message": message}
    assert kube_requests(app) == before


def test_a_token_from_one_replica_is_good_on_another_and_a_new_key_wants_a_new_login(
    pfcon, kubeconfig
):
    url, _ = pfcon
    issued = requests.post(
        f"{url}auth-token/", json={"pfcon_user": USER, "pfcon_password": PASSWORD}, timeout=10
    ).json()["token"]
    with pman_server(settings_for(kubeconfig)) as (other, _):
        answer = requests.get(f"{other}{BASE}pluginjobs/", headers=auth(issued), timeout=10)
        assert answer.status_code == 200, answer.text
    rekeyed = settings_for(kubeconfig, pfcon_secret_key="r" * 40)
    with pman_server(rekeyed) as (other, _):
        answer = requests.get(f"{other}{BASE}pluginjobs/", headers=auth(issued), timeout=10)
        assert answer.json() == {"message": "Invalid authorization token."}
        login = {"pfcon_user": USER, "pfcon_password": PASSWORD}
        fresh = requests.post(f"{other}{BASE}auth-token/", json=login, timeout=10).json()
        answer = requests.get(f"{other}{BASE}pluginjobs/", headers=auth(fresh["token"]), timeout=10)
        assert answer.status_code == 200


def test_pmans_own_token_neither_applies_here_nor_is_replaced_by_a_pfcon_token(pfcon):
    url, _ = pfcon
    root = url.removesuffix(BASE)
    assert requests.get(f"{url}pluginjobs/", headers=auth(), timeout=10).status_code == 200
    assert requests.get(f"{root}/api/v1/", headers=auth(), timeout=10).status_code == 401
    own = {"Authorization": "Bearer pman-own-token"}
    assert requests.get(f"{root}/api/v1/", headers=own, timeout=10).status_code == 200
    assert requests.get(f"{url}no-such-route/", timeout=10).status_code == 404


# -- server info -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["pluginjobs", "copyjobs", "uploadjobs", "deletejobs"])
def test_every_list_route_answers_the_server_info(pfcon, kind):
    url, _ = pfcon
    response = requests.get(f"{url}{kind}/", headers=auth(), timeout=10)
    assert response.status_code == 200
    assert response.json() == SERVER_INFO


# -- POST pluginjobs/ bodies -----------------------------------------------------------------


def post_form(url, fields, **kwargs):
    return requests.post(f"{url}pluginjobs/", data=fields, headers=auth(), timeout=10, **kwargs)


def changed(**fields) -> list[tuple[str, str]]:
    """CUBE's form with some fields replaced (a list value repeats it; None removes it)."""
    form = [(k, v) for k, v in CUBE_FORM if k not in fields]
    for key, value in fields.items():
        values = value if isinstance(value, list) else [] if value is None else [value]
        form += [(key, item) for item in values]
    return form


def test_cubes_real_request_passes_validation_and_goes_on_to_kubernetes(pfcon):
    url, _ = pfcon
    response = post_form(url, CUBE_FORM)
    # Valid: pman goes on to look for the job, and Kubernetes does not answer here.
    assert response.status_code == 503, response.text
    assert "Kubernetes" in response.json()["message"]


def test_a_multipart_form_is_a_form_too(pfcon):
    url, _ = pfcon
    files = [(key, (None, value)) for key, value in CUBE_FORM]  # repeated fields kept
    response = requests.post(f"{url}pluginjobs/", files=files, headers=auth(), timeout=10)
    # Parsed as a form (not 415) and valid, as the same fields urlencoded: on to Kubernetes.
    assert response.status_code == 503, response.text
    assert "Kubernetes" in response.json()["message"]


@pytest.mark.parametrize(
    ("headers", "kwargs"),
    [
        ({"Content-Type": "application/json"}, {"data": '{"jid": "chris-jid-1"}'}),
        ({}, {"json": dict(CUBE_FORM)}),
        ({"Content-Type": "text/plain"}, {"data": "jid=chris-jid-1"}),
        ({}, {}),
    ],
)
def test_a_body_that_is_no_form_is_415(pfcon, headers, kwargs):
    url, app = pfcon
    before = kube_requests(app)
    response = requests.post(
        f"{url}pluginjobs/", headers={**auth(), **headers}, timeout=10, **kwargs
    )
    assert response.status_code == 415, response.text
    assert "form" in response.json()["message"]
    assert kube_requests(app) == before


BAD = [
    ("jid", None, "is required"),
    ("jid", "Chris_1", "DNS-1123"),
    ("jid", "a" * 64, "at most 63"),
    ("jid", ["chris-jid-1", "chris-jid-2"], "must be given once"),
    ("image", ["a", "b"], "must be given once"),
    ("auid", None, "is required"),
    ("number_of_workers", "0", "from 1 to 999"),
    ("number_of_workers", "one", "whole number"),
    ("cpu_limit", "1.5", "whole number"),
    ("cpu_limit", "-1000", "whole number"),
    ("memory_limit", "", "whole number"),
    ("gpu_limit", None, "is required"),
    ("image", "", "image reference"),
    ("image", "a b", "image reference"),
    ("entrypoint", None, "is required"),
    ("entrypoint", ["py\x00thon"], "NUL"),
    ("type", "DS", "one of 'ds', 'fs', 'ts'"),
    ("env", ["NOEQUALS"], "item 0: 'NOEQUALS' is not KEY=VALUE"),
    ("env", ["A=b", "1A=b"], "item 1: '1A' is not a valid environment variable name"),
    ("input_dirs", ["home/alice/../bob"], "item 0: must be a folder"),
    ("input_dirs", ["ok/dir", "a//b"], "item 1: must be a folder"),
    ("input_dirs", ["."], "must be a folder"),
    ("output_dir", None, "is required"),
    ("output_dir", "home/alice/../../etc", "must be a folder"),
    ("output_dir", "/", "must be a folder"),
    ("output_dir", "", "must be a folder"),
    ("output_dir", "x" * 701, "at most 700"),
    ("args", ["a"] * 1001, "at most 1000"),
]


@pytest.mark.parametrize(("field", "value", "words"), BAD)
def test_a_bad_field_is_400_naming_it_without_asking_kubernetes_or_swift(
    pfcon, field, value, words
):
    url, app = pfcon
    before = kube_requests(app)
    response = post_form(url, changed(**{field: value}))
    assert response.status_code == 400, response.text
    message = response.json()["message"]
    assert words in message[field], message
    assert kube_requests(app) == before


def test_every_bad_field_is_in_one_answer(pfcon):
    url, _ = pfcon
    form = changed(jid=["a", "b"], cpu_limit="x", type="xs", output_dir=None, env=["A"])
    message = post_form(url, form).json()["message"]
    assert set(message) == {"jid", "cpu_limit", "type", "output_dir", "env"}


def test_list_fields_default_to_empty_and_numbers_may_have_leading_zeros(pfcon):
    url, _ = pfcon
    form = changed(args=None, env=None, input_dirs=None, cpu_limit="01000")
    assert post_form(url, form).status_code == 503  # valid: on to Kubernetes


def test_unknown_fields_are_ignored_and_a_leading_slash_of_the_jid_is_dropped(pfcon):
    url, _ = pfcon
    assert post_form(url, changed(jid="/chris-jid-1", colour="blue")).status_code == 503


def test_a_form_larger_than_the_limit_is_413(pfcon):
    url, app = pfcon
    before = kube_requests(app)
    response = post_form(url, changed(args=["x" * 1000] * 80))
    assert response.status_code == 413
    assert "larger than" in response.json()["message"]
    assert kube_requests(app) == before


def test_a_chunked_form_larger_than_the_limit_is_413(pfcon):
    url, _ = pfcon
    body = "&".join(f"args={'x' * 1000}" for _ in range(80)).encode()
    response = requests.post(
        f"{url}pluginjobs/",
        data=iter([body[i : i + 4096] for i in range(0, len(body), 4096)]),
        headers={**auth(), "Content-Type": "application/x-www-form-urlencoded"},
        timeout=10,
    )
    assert response.status_code == 413, response.text


def test_a_multipart_form_of_too_many_parts_is_413(pfcon):
    url, _ = pfcon
    files = [("args", (None, "x"))] * 1500
    response = requests.post(f"{url}pluginjobs/", files=files, headers=auth(), timeout=10)
    assert response.status_code == 413, response.text


# -- jobs that cannot exist, routes that are no jobs -----------------------------------------


@pytest.mark.parametrize("jid", ["Chris", "a_b", "-a", "a" * 64])
def test_a_jid_that_cannot_exist_is_404_or_a_204_delete_without_asking_kubernetes(pfcon, jid):
    url, app = pfcon
    before = kube_requests(app)
    assert requests.get(f"{url}pluginjobs/{jid}/", headers=auth(), timeout=10).status_code == 404
    file_url = f"{url}pluginjobs/{jid}/file/?job_output_path=x"
    assert requests.get(file_url, headers=auth(), timeout=10).status_code == 404
    assert requests.delete(f"{url}pluginjobs/{jid}/", headers=auth(), timeout=10).status_code == 204
    assert kube_requests(app) == before


def test_an_unreachable_kubernetes_is_503(pfcon):
    url, _ = pfcon
    response = requests.get(f"{url}pluginjobs/chris-jid-1/", headers=auth(), timeout=30)
    assert response.status_code == 503
    assert "Kubernetes" in response.json()["message"]


def test_the_file_list_needs_its_query_parameter(pfcon):
    url, _ = pfcon
    response = requests.get(f"{url}pluginjobs/chris-jid-1/file/", headers=auth(), timeout=10)
    assert response.status_code == 400
    assert response.json()["message"] == {"job_output_path": "query parameter is required"}


@pytest.mark.parametrize("kind", ["copy", "upload"])
def test_copy_and_upload_jobs_are_refused_saying_this_compute_needs_neither(pfcon, kind):
    url, _ = pfcon
    form = {"jid": "chris-jid-1", "input_dirs": "a", "output_dir": "b", "job_output_path": "b"}
    response = requests.post(f"{url}{kind}jobs/", data=form, headers=auth(), timeout=10)
    assert response.status_code == 400
    message = response.json()["message"]
    assert f"needs no {kind} job" in message
    assert "requires_copy_job and requires_upload_job are false" in message
    job = requests.get(f"{url}{kind}jobs/chris-jid-1/", headers=auth(), timeout=10)
    assert job.status_code == 404
    assert f"needs no {kind} job" in job.json()["message"]
    gone = requests.delete(f"{url}{kind}jobs/chris-jid-1/", headers=auth(), timeout=10)
    assert (gone.status_code, gone.content) == (204, b"")


def test_a_delete_job_is_skipped_finished_at_once_and_stays_so(pfcon):
    url, app = pfcon
    before = kube_requests(app)
    expected = {
        "compute": {
            "jid": "chris-jid-7",
            "image": "",
            "cmd": "",
            "status": "finishedSuccessfully",
            "message": "deleteSkipped",
            "timestamp": "",
            "logs": "",
        }
    }
    response = requests.post(
        f"{url}deletejobs/", data={"jid": "chris-jid-7"}, headers=auth(), timeout=10
    )
    assert (response.status_code, response.json()) == (201, expected)
    later = requests.get(f"{url}deletejobs/chris-jid-7/", headers=auth(), timeout=10)
    assert (later.status_code, later.json()) == (200, expected)
    gone = requests.delete(f"{url}deletejobs/chris-jid-7/", headers=auth(), timeout=10)
    assert (gone.status_code, gone.content) == (204, b"")
    assert kube_requests(app) == before


@pytest.mark.parametrize("form", [{"other": "x"}, {"jid": "Bad_Jid"}, [("jid", "a"), ("jid", "b")]])
def test_a_delete_job_needs_one_good_jid(pfcon, form):
    url, _ = pfcon
    response = requests.post(f"{url}deletejobs/", data=form, headers=auth(), timeout=10)
    assert response.status_code == 400
    assert "jid" in response.json()["message"]


def test_a_path_without_its_slash_redirects_and_a_wrong_method_is_405(pfcon):
    url, _ = pfcon
    moved = requests.get(f"{url}health", allow_redirects=False, timeout=10)
    assert moved.status_code == 308
    assert moved.headers["Location"].endswith(f"{BASE}health/")
    wrong = requests.put(f"{url}pluginjobs/", headers=auth(), timeout=10)
    assert wrong.status_code == 405
    assert "message" in wrong.json()


# -- the base, the API off, the settings -----------------------------------------------------


def test_the_api_is_served_under_the_base_it_is_given_and_nowhere_else(kubeconfig):
    with pman_server(settings_for(kubeconfig, pfcon_base="/compute/x/api/v1/")) as (url, _):
        assert requests.get(f"{url}/compute/x/api/v1/health/", timeout=10).status_code == 200
        assert requests.get(f"{url}{BASE}health/", timeout=10).status_code == 404
        # pman's own routes still mean what they meant: a jid may be called pluginjobs.
        assert requests.get(f"{url}/api/v1/", timeout=10).json()["storage_type"] == "swift"


def test_off_unless_its_user_and_password_are_set_and_says_so_at_start(kubeconfig, caplog):
    caplog.set_level(logging.INFO, logger="pman")
    off = settings_for(kubeconfig, pfcon_user=None, pfcon_password=None)
    with pman_server(off) as (url, _):
        assert requests.get(f"{url}{BASE}health/", timeout=10).status_code == 404
    assert "the pfcon API is off" in caplog.text
    caplog.clear()
    with pman_server(settings_for(kubeconfig)):
        pass
    assert f"the pfcon API is on at {BASE}" in caplog.text


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"swift_credentials": None}, "needs pman's Swift credentials"),
        ({"pfcon_secret_key": None}, "needs PFCON_SECRET_KEY"),
        ({"pfcon_secret_key": "short"}, "at least 32 characters"),
        ({"pfcon_password": None}, "go together"),
        ({"pfcon_bookkeeping_container": "users"}, "must not be CUBE's container"),
    ],
)
def test_pman_refuses_to_start_with_the_api_half_configured(kubeconfig, changes, words):
    with pytest.raises(SettingsError, match=words):
        create_app(settings_for(kubeconfig, **changes))


def test_the_settings_come_from_pfcons_names():
    env = {
        "PFCON_USER": USER,
        "PFCON_PASSWORD": PASSWORD,
        "PFCON_SECRET_KEY": KEY,
        "SWIFT_CONTAINER_NAME": "cube-data",
        "PFCON_BASE_PATH": "/chris/api/v1/",
        "ST_AUTH": AUTH_URL,
        "ST_USER": "test:tester",
        "ST_KEY": "testing",
    }
    settings = Settings.from_env(env)
    assert settings.pfcon_enabled
    assert (settings.swift_container_name, settings.bookkeeping_container) == (
        "cube-data",
        "cube-data_pman",
    )
    assert settings.pfcon_base == "/chris/api/v1/"
    assert PASSWORD not in repr(settings)
    assert KEY not in repr(settings)
    with pytest.raises(SettingsError, match="PFCON_BASE_PATH"):
        Settings.from_env({**env, "PFCON_BASE_PATH": "/api/v1/pfcon/"})
    with pytest.raises(SettingsError, match="PFCON_SECRET_KEY"):
        Settings.from_env({k: v for k, v in env.items() if k != "PFCON_SECRET_KEY"})
