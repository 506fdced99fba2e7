"""openshift/swift-credentials.cfg.example: every field it shows is one the publisher reads,
in each of the three ways to authenticate it describes."""

from __future__ import annotations

import re

import pytest

from publisher.credentials import load_file
from tests.support.openshift.templates import OPENSHIFT

EXAMPLE = (OPENSHIFT / "swift-credentials.cfg.example").read_text()
FIELD = re.compile(r"^(#?)(\w+) = (.*)$", re.MULTILINE)


def variant(*, enable: tuple[str, ...] = (), disable: tuple[str, ...] = ()) -> str:
    """The example with some commented fields switched on and some active ones off, and
    every value made distinct, so that a field the publisher ignored would show."""

    def edit(match: re.Match[str]) -> str:
        commented, key, value = match.groups()
        if key in disable or (commented and key not in enable):
            return f"# {key} (off)"
        if key in ("osAuthUrl", "authVersion"):
            return f"{key} = {value}"
        return f"{key} = v-{key}"

    return FIELD.sub(edit, EXAMPLE)


def load(tmp_path, text: str):
    path = tmp_path / "swift-credentials.cfg"
    path.write_text(text)
    return load_file(path)


def test_as_written_it_is_a_keystone_password_file(tmp_path):
    credentials = load(tmp_path, EXAMPLE)
    assert credentials.kind == "password"
    assert credentials.auth_url == "https://keystone.example.org:5000/v3"


def test_every_password_field_reaches_the_publisher(tmp_path):
    credentials = load(tmp_path, variant())
    assert (
        credentials.kind,
        credentials.username,
        credentials.secret,
        credentials.user_domain,
        credentials.region,
        credentials.project_name,
        credentials.project_domain,
    ) == (
        "password",
        "v-username",
        "v-password",
        "v-osUserDomain",
        "v-osRegionName",
        "v-osProjectName",
        "v-osProjectDomain",
    )


def test_the_application_credential_fields_reach_the_publisher(tmp_path):
    text = variant(
        enable=("applicationCredentialId", "applicationCredentialSecret"),
        disable=("username", "password", "osUserDomain", "osProjectDomain", "osProjectName"),
    )
    credentials = load(tmp_path, text)
    assert (credentials.kind, credentials.app_credential_id, credentials.secret) == (
        "application",
        "v-applicationCredentialId",
        "v-applicationCredentialSecret",
    )


def test_the_swift_v1_fields_reach_the_publisher(tmp_path):
    text = variant(enable=("authVersion",), disable=("osProjectDomain", "osProjectName"))
    credentials = load(tmp_path, text)
    assert (credentials.kind, credentials.username, credentials.secret) == (
        "v1",
        "v-username",
        "v-password",
    )


@pytest.mark.parametrize(
    "key",
    [
        "osAuthUrl",
        "username",
        "password",
        "osUserDomain",
        "osRegionName",
        "applicationCredentialId",
        "applicationCredentialSecret",
        "authVersion",
        "osProjectDomain",
        "osProjectName",
    ],
)
def test_the_example_shows_every_field(key):
    assert key in {match.group(2) for match in FIELD.finditer(EXAMPLE)}
