"""The template's pfcon API (pman as a ChRIS compute resource): its password and token key
are generated when not given and kept when given, reach pman's settings through Secret
pman-pfcon, the API can be turned off, and pman deployed from the template serves it."""

from __future__ import annotations

import re

import pytest
import requests

from tests.support.openshift import template
from tests.support.openshift.deployed import deploy
from tests.support.openshift.templates import (
    ALL_SET,
    REQUIRED,
    find,
    load,
    pman_container,
    pman_settings,
    process,
)

PFCON_SECRET = "pman-pfcon"


def pfcon_secret(objects) -> dict[str, str]:
    return find(objects, "Secret", PFCON_SECRET)["stringData"]


def test_the_password_and_key_are_generated_when_not_given():
    first, second = pfcon_secret(process("pman.yaml")), pfcon_secret(process("pman.yaml"))
    assert first["user"] == "pfcon"
    assert re.fullmatch(r"[a-zA-Z0-9]{32}", first["password"])
    assert re.fullmatch(r"[a-zA-Z0-9]{64}", first["secret-key"])
    assert first["password"] != second["password"]
    assert first["secret-key"] != second["secret-key"]


def test_given_values_are_kept():
    given = pfcon_secret(process("pman.yaml", "all-set"))
    values = ALL_SET["pman.yaml"]
    assert given == {
        "user": values["PFCON_USER"],
        "password": values["PFCON_PASSWORD"],
        "secret-key": values["PFCON_SECRET_KEY"],
    }


def test_pmans_secrets_come_from_the_secret_never_from_plain_values():
    env = {item["name"]: item for item in pman_container(process("pman.yaml"))["env"]}
    for name, key in [
        ("PFCON_USER", "user"),
        ("PFCON_PASSWORD", "password"),
        ("PFCON_SECRET_KEY", "secret-key"),
    ]:
        assert env[name]["valueFrom"]["secretKeyRef"] == {"name": PFCON_SECRET, "key": key}


@pytest.mark.parametrize("variant", ["defaults", "all-set"])
def test_pman_gets_a_working_pfcon_api_from_the_template(variant):
    objects = process("pman.yaml", variant)
    settings = pman_settings(objects)
    secret = pfcon_secret(objects)
    assert settings.pfcon_enabled
    assert (settings.pfcon_user, settings.pfcon_password, settings.pfcon_secret_key) == (
        secret["user"],
        secret["password"],
        secret["secret-key"],
    )
    if variant == "defaults":
        assert settings.pfcon_base == "/pfcon/api/v1/"
        assert (settings.swift_container_name, settings.bookkeeping_container) == (
            "users",
            "users_pman",
        )
    else:
        values = ALL_SET["pman.yaml"]
        assert settings.pfcon_base == values["PFCON_BASE_PATH"]
        assert settings.swift_container_name == values["SWIFT_CONTAINER_NAME"]
        assert settings.bookkeeping_container == values["PFCON_BOOKKEEPING_CONTAINER"]


def test_an_empty_user_and_password_turn_the_api_off():
    values = {**REQUIRED["pman.yaml"], "PFCON_USER": "", "PFCON_PASSWORD": ""}
    objects = template.process(load("pman.yaml"), values)["items"]
    assert not pman_settings(objects).pfcon_enabled


def test_the_message_says_what_to_register_in_cube():
    tpl = load("pman.yaml")
    resolved = template.resolve(tpl, REQUIRED["pman.yaml"])
    text = template.message(tpl, resolved)
    assert "/pfcon/api/v1/" in text
    assert "user pfcon" in text
    assert "secret/pman-pfcon" in text
    assert "requires_copy_job and requires_upload_job false" in text


def test_pman_deployed_from_the_template_serves_the_pfcon_api(kube_cluster, swift_server):
    if kube_cluster.local is None:
        pytest.skip("runs pman's pod as a local process: needs the local cluster")
    with deploy(kube_cluster, swift_server) as deployed:
        secret = pfcon_secret(deployed.objects)
        base = f"{deployed.url}/pfcon/api/v1/"
        login = {"pfcon_user": secret["user"], "pfcon_password": secret["password"]}
        response = requests.post(f"{base}auth-token/", json=login, timeout=30)
        assert response.status_code == 200, response.text
        headers = {"Authorization": f"Bearer {response.json()['token']}"}
        info = requests.get(f"{base}pluginjobs/", headers=headers, timeout=30).json()
        assert (info["requires_copy_job"], info["requires_upload_job"]) == (False, False)
        assert info["swift_auth_url"] == swift_server.auth_url
        assert info["container_env"] == "openshift"
        assert "the pfcon API is on at /pfcon/api/v1/" in deployed.logs()
