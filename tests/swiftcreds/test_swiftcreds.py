"""swiftcreds: the shared parser's own error type, and what it builds for the libraries."""

from __future__ import annotations

import pytest
from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3

from swiftcreds import (
    Credentials,
    CredentialsError,
    from_environment,
    keystone_plugin,
    load_file,
    swiftclient_options,
)

SECRET = "s3cr%t"


def test_errors_are_value_errors_naming_the_file_not_the_secret(tmp_path):
    path = tmp_path / "creds.cfg"
    path.write_text(f"[AUTHORIZATION]\nosAuthUrl = http://k/v3\npassword = {SECRET}\n")
    with pytest.raises(CredentialsError) as caught:
        load_file(path)
    assert isinstance(caught.value, ValueError)
    assert str(path) in str(caught.value)
    assert "username" in str(caught.value)
    assert SECRET not in str(caught.value)


def test_a_directory_instead_of_a_file_is_a_credentials_error(tmp_path):
    with pytest.raises(CredentialsError, match="cannot be read: Is a directory") as caught:
        load_file(tmp_path)
    assert str(tmp_path) in str(caught.value)


def test_no_variables_means_no_credentials():
    assert from_environment({"HOME": "/root"}) is None


def test_swift_v1_options_for_swiftclient():
    creds = from_environment({"ST_AUTH": "http://s/auth/v1.0", "ST_USER": "a:b", "ST_KEY": SECRET})
    assert swiftclient_options(creds, timeout=7) == {
        "authurl": "http://s/auth/v1.0",
        "user": "a:b",
        "key": SECRET,
        "auth_version": "1",
        "timeout": 7,
    }


def test_keystone_password_options_carry_a_session_and_the_region():
    creds = Credentials(
        "password",
        "http://k:5000",
        SECRET,
        username="u",
        user_domain="ldap",
        project_name="p",
        region="moc",
    )
    options = swiftclient_options(creds, timeout=7)
    assert isinstance(options["session"], ks_session.Session)
    assert options["os_options"] == {
        "service_type": "object-store",
        "interface": "public",
        "region_name": "moc",
    }
    plugin = options["session"].auth
    assert isinstance(plugin, v3.Password)
    assert plugin.auth_url == "http://k:5000/v3"  # the unversioned URL gets /v3
    assert plugin.auth_methods[0].user_domain_name == "ldap"


def test_application_credential_plugin():
    creds = Credentials("application", "http://k/v3/", SECRET, app_credential_id="id1")
    plugin = keystone_plugin(creds)
    assert isinstance(plugin, v3.ApplicationCredential)
    assert plugin.auth_url == "http://k/v3"
    assert plugin.auth_methods[0].application_credential_id == "id1"


def test_swift_v1_has_no_keystone_plugin():
    with pytest.raises(ValueError, match="Keystone"):
        keystone_plugin(Credentials("v1", "http://s/auth/v1.0", SECRET, username="a:b"))
