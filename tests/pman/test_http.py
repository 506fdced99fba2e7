"""pman over real HTTP where Kubernetes is not needed, or is unreachable on purpose."""

# Request tables read best one case per line.
# ruff: noqa: E501

from __future__ import annotations

import logging
import random
import re
import string

import jsonschema
import pytest
import requests

from pman.settings import Settings
from tests.support.bodies import BAD_FIELDS, pfcon_request
from tests.support.pman_server import pman_server, unreachable_kubeconfig

TOKEN = "t0ken-with-enough-entropy"


@pytest.fixture(scope="module")
def offline(tmp_path_factory):
    """pman whose Kubernetes API is a port nothing listens on (and without the status
    cache, whose retries would add requests to the counts these tests compare)."""
    kubeconfig = unreachable_kubeconfig(tmp_path_factory.mktemp("kube"))
    settings = Settings(kubeconfig=str(kubeconfig), max_body_bytes=4096, status_cache=False)
    with pman_server(settings) as (url, app):
        yield url, app


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    """pman with a bearer token configured."""
    kubeconfig = unreachable_kubeconfig(tmp_path_factory.mktemp("kube"))
    with pman_server(Settings(kubeconfig=str(kubeconfig), api_token=TOKEN)) as (url, _):
        yield url


def kube_requests(app) -> int:
    return app.extensions["pman"].metrics.kube_requests()


def test_server_info(offline):
    url, _ = offline
    response = requests.get(f"{url}/api/v1/", timeout=10)
    assert response.status_code == 200
    assert response.json() == {
        "server_version": "6.0.0",
        "container_env": "kubernetes",
        "storage_type": "swift",
    }
    assert requests.head(f"{url}/api/v1/", timeout=10).status_code == 200


@pytest.mark.parametrize(
    ("path", "target"), [("/api/v1", "/api/v1/"), ("/api/v1/chris-jid-42", "/api/v1/chris-jid-42/")]
)
def test_paths_without_the_slash_redirect_with_308(offline, path, target):
    url, _ = offline
    response = requests.get(f"{url}{path}", allow_redirects=False, timeout=10)
    assert response.status_code == 308
    assert response.headers["Location"].endswith(target)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PUT", "/api/v1/"),
        ("DELETE", "/api/v1/"),
        ("POST", "/api/v1/chris-jid-42/"),
        ("PATCH", "/api/v1/chris-jid-42/"),
    ],
)
def test_wrong_method_is_405_with_a_message(offline, method, path):
    url, _ = offline
    response = requests.request(method, f"{url}{path}", timeout=10)
    assert response.status_code == 405
    assert response.json()["message"]


@pytest.mark.parametrize(
    "headers",
    [{}, {"Content-Type": "text/plain"}, {"Content-Type": "application/x-www-form-urlencoded"}],
)
def test_post_without_json_content_type_is_415(offline, headers):
    url, _ = offline
    response = requests.post(f"{url}/api/v1/", data=b'{"jid": "x"}', headers=headers, timeout=10)
    assert response.status_code == 415
    assert "application/json" in response.json()["message"]


@pytest.mark.parametrize("body", [b"{", b"\xff\xfe", b"[1, 2]", b'"text"', b"null", b"[" * 100000])
def test_body_that_is_no_json_object_is_400(offline, body):
    url, _ = offline
    response = requests.post(
        f"{url}/api/v1/", data=body, headers={"Content-Type": "application/json"}, timeout=10
    )
    assert response.status_code in (400, 413)
    assert isinstance(response.json()["message"], str)


def test_every_bad_field_is_400_naming_it_without_asking_kubernetes(offline):
    url, app = offline
    before = kube_requests(app)
    for field, value, words in BAD_FIELDS:
        body = pfcon_request(**{field: value})
        response = requests.post(f"{url}/api/v1/", json=body, timeout=10)
        assert response.status_code == 400, (field, value)
        assert words in response.json()["message"][field], (field, value)
    assert kube_requests(app) == before


def test_all_bad_fields_are_in_one_answer(offline):
    url, _ = offline
    response = requests.post(f"{url}/api/v1/", json={"jid": "Bad!", "cpu_limit": "1.5"}, timeout=10)
    assert response.status_code == 400
    message = response.json()["message"]
    assert {"jid", "cpu_limit", "args", "auid", "image", "entrypoint", "type"} <= set(message)


def test_oversized_body_is_413(offline):
    url, _ = offline
    body = pfcon_request(args=["x" * 5000])
    response = requests.post(f"{url}/api/v1/", json=body, timeout=10)
    assert response.status_code == 413
    assert "4096 bytes" in response.json()["message"]


def test_oversized_chunked_body_is_413(offline):
    url, _ = offline
    chunks = iter([b'{"args": ["', b"x" * 8192, b'"]}'])
    response = requests.post(
        f"{url}/api/v1/", data=chunks, headers={"Content-Type": "application/json"}, timeout=10
    )
    assert response.status_code == 413


@pytest.mark.parametrize("jid", ["Chris", "a_b", "x" * 64, "-a"])
@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_a_jid_that_cannot_exist_is_404_without_asking_kubernetes(offline, jid, method):
    url, app = offline
    before = kube_requests(app)
    response = requests.request(method, f"{url}/api/v1/{jid}/", timeout=10)
    assert response.status_code == 404
    assert jid in response.json()["message"]
    assert kube_requests(app) == before


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [("POST", "/api/v1/", pfcon_request()), ("GET", "/api/v1/chris-jid-42/", None),
     ("DELETE", "/api/v1/chris-jid-42/", None), ("GET", "/api/v1/_jobs/", None), ("GET", "/readyz", None)],
)  # fmt: skip
def test_unreachable_kubernetes_is_503(offline, method, path, body):
    url, _ = offline
    response = requests.request(method, f"{url}{path}", json=body, timeout=30)
    assert response.status_code == 503
    assert "unreachable" in response.json()["message"]


def test_unreachable_kubernetes_is_told_without_python_internals(offline):
    url, _ = offline
    response = requests.post(f"{url}/api/v1/", json=pfcon_request(), timeout=30)
    assert response.status_code == 503
    assert response.json() == {
        "message": "the Kubernetes API at http://127.0.0.1:9 is unreachable (connection refused)"
    }


def test_readiness_says_only_what_is_not_ready_and_logs_where_it_looked(tmp_path, caplog):
    kubeconfig = unreachable_kubeconfig(tmp_path)
    settings = Settings(
        kubeconfig=str(kubeconfig), job_namespace="ns-of-readyz", status_cache=False
    )
    with caplog.at_level(logging.WARNING, logger="pman"), pman_server(settings) as (url, _):
        response = requests.get(f"{url}/readyz", timeout=30)
    assert response.status_code == 503
    assert response.json() == {"message": "not ready: Kubernetes API unreachable"}
    details = ("127.0.0.1", ":9", "ns-of-readyz", "app.kubernetes.io/managed-by=pman")
    assert [detail for detail in details if detail in response.text] == []
    logged = [r.getMessage() for r in caplog.records if r.getMessage().startswith("not ready")]
    assert len(logged) == 1
    assert [detail for detail in details if detail not in logged[0]] == [], logged[0]


@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_a_jid_ending_in_a_newline_is_404_without_asking_kubernetes(offline, method):
    url, app = offline
    before = kube_requests(app)
    response = requests.request(method, f"{url}/api/v1/chris-jid-42%0A/", timeout=10)
    assert response.status_code == 404
    assert response.json() == {"message": "no job 'chris-jid-42\\n'"}
    assert kube_requests(app) == before


def test_healthz_answers_without_kubernetes(offline):
    url, _ = offline
    response = requests.get(f"{url}/healthz", timeout=10)
    assert (response.status_code, response.text) == (200, "ok\n")


def test_metrics_count_requests_by_route_and_code(offline):
    url, _ = offline
    requests.get(f"{url}/api/v1/Nope/", timeout=10)
    text = requests.get(f"{url}/metrics", timeout=10).text
    assert 'pman_http_requests_total{code="404",method="GET",route="/api/v1/<jid>/"}' in text
    assert "pman_jobs_submitted_total 0.0" in text
    assert "pman_kubernetes_request_duration_seconds_bucket" in text


def test_metric_labels_come_from_a_closed_set_whatever_clients_send(tmp_path):
    kubeconfig = unreachable_kubeconfig(tmp_path)
    settings = Settings(kubeconfig=str(kubeconfig), api_token=TOKEN, status_cache=False)
    methods = ["GET", "POST", "DELETE", "PUT", "PATCH", "OPTIONS", "HEAD", "TRACE", "CONNECT"]
    chance = random.Random(14)
    with pman_server(settings) as (url, _), requests.Session() as session:
        for number in range(300):
            invented = "".join(chance.choices(string.ascii_uppercase, k=8))
            method = chance.choice([*methods, invented])
            path = chance.choice(["/api/v1/", "/api/v1/some-job/", f"/x{number}/", "/metrics"])
            session.request(method, f"{url}{path}", timeout=10)
        text = session.get(
            f"{url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
        ).text
    series = [line for line in text.splitlines() if line.startswith("pman_http_requests_total{")]
    labels = [dict(re.findall(r'(\w+)="([^"]*)"', line)) for line in series]
    assert series, text
    assert "other" in {label["method"] for label in labels}  # the invented methods
    assert "unmatched" in {label["route"] for label in labels}  # the /x<n>/ paths
    assert {label["method"] for label in labels} <= {*methods, "other"}
    assert {label["route"] for label in labels} <= {
        "/api/v1/",
        "/api/v1/<jid>/",
        "/metrics",
        "unmatched",
    }
    assert {label["code"] for label in labels} <= {"200", "401", "404", "405"}
    assert len(series) <= 4 * 10 * 4


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": TOKEN},
        {"Authorization": f"Basic {TOKEN}"},
    ],
)
@pytest.mark.parametrize(
    "path", ["/api/v1/", "/api/v1/chris-jid-42/", "/api/v1/_jobs/", "/metrics", "/openapi.json"]
)
def test_token_is_required_when_configured(guarded, headers, path):
    response = requests.get(f"{guarded}{path}", headers=headers, timeout=10)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert "Bearer" in response.json()["message"]


def test_right_token_is_let_through(guarded):
    response = requests.get(
        f"{guarded}/api/v1/", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
    )
    assert response.status_code == 200


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_health_needs_no_token(guarded, path):
    assert requests.get(f"{guarded}{path}", timeout=30).status_code != 401


def test_openapi_document_describes_the_api(offline):
    url, _ = offline
    document = requests.get(f"{url}/openapi.json", timeout=10).json()
    assert document["openapi"].startswith("3.1")
    assert {
        "/api/v1/",
        "/api/v1/{jid}/",
        "/api/v1/_jobs/",
        "/healthz",
        "/readyz",
        "/metrics",
    } <= set(document["paths"])
    for schema in document["components"]["schemas"].values():
        jsonschema.Draft202012Validator.check_schema(schema)


def test_openapi_request_schema_agrees_with_validation(offline):
    url, _ = offline
    document = requests.get(f"{url}/openapi.json", timeout=10).json()
    schema = {
        **document["components"]["schemas"]["JobRequest"],
        "$defs": document["components"]["schemas"],
    }
    validator = jsonschema.Draft202012Validator(schema)
    assert validator.is_valid(pfcon_request(number_of_workers="1", cpu_limit="1000", env=None))
    for field, value, _ in BAD_FIELDS:
        if field == "jid" and value == "/":
            continue
        assert not validator.is_valid(pfcon_request(**{field: value})), (field, value)
