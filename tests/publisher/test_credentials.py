"""Credentials: every supported form parses; bad ones fail clearly and never echo a secret."""

from __future__ import annotations

import pytest

from publisher.credentials import from_environment, load_file, resolve
from publisher.errors import CredentialsError

SECRET = "s3cr%t-value"


def write(tmp_path, text: str):
    path = tmp_path / "swift-credentials.cfg"
    path.write_text(text)
    return path


def test_original_keystone_password_file(tmp_path):
    path = write(
        tmp_path,
        "[AUTHORIZATION]\nosAuthUrl = https://keystone.example:5000/v3\nusername = chris\n"
        f"password = {SECRET}\n\n[PROJECT]\nosProjectDomain = Default\nosProjectName = radiology\n",
    )
    creds = load_file(path)
    assert (creds.kind, creds.username, creds.project_name, creds.project_domain) == (
        "password",
        "chris",
        "radiology",
        "Default",
    )
    assert creds.secret == SECRET  # '%' is not interpolation
    assert SECRET not in repr(creds)
    assert SECRET not in creds.describe()


def test_optional_user_domain_and_region(tmp_path):
    path = write(
        tmp_path,
        "[AUTHORIZATION]\nosAuthUrl = http://k:5000/v3\nusername = u\npassword = p\n"
        "osUserDomain = ldap\nosRegionName = moc\n[PROJECT]\nosProjectName = p1\n",
    )
    creds = load_file(path)
    assert (creds.user_domain, creds.region) == ("ldap", "moc")


def test_application_credential_file(tmp_path):
    path = write(
        tmp_path,
        "[AUTHORIZATION]\nosAuthUrl = http://k:5000/v3\napplicationCredentialId = abc\n"
        f"applicationCredentialSecret = {SECRET}\n",
    )
    creds = load_file(path)
    assert (creds.kind, creds.app_credential_id, creds.secret) == ("application", "abc", SECRET)
    assert creds.region == ""


def test_application_credential_file_with_a_region(tmp_path):
    path = write(
        tmp_path,
        "[AUTHORIZATION]\nosAuthUrl = http://k:5000/v3\napplicationCredentialId = abc\n"
        f"applicationCredentialSecret = {SECRET}\nosRegionName = RegionTwo\n",
    )
    assert load_file(path).region == "RegionTwo"


def test_application_credential_in_a_secret_section(tmp_path):
    path = write(
        tmp_path,
        "[AUTHORIZATION]\nosAuthUrl = http://k:5000/v3\n"
        f"[SECRET]\napplicationId = abc\napplicationSecret = {SECRET}\n",
    )
    assert load_file(path).kind == "application"


def test_swift_v1_file_recognised_by_url(tmp_path):
    path = write(
        tmp_path,
        "[AUTHORIZATION]\nosAuthUrl = http://swift:8080/auth/v1.0\nusername = test:tester\n"
        "password = testing\n",
    )
    creds = load_file(path)
    assert (creds.kind, creds.username) == ("v1", "test:tester")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[PROJECT]\nosProjectName = p\n", "missing the [AUTHORIZATION] section"),
        ("[AUTHORIZATION]\nusername = u\npassword = p\n", "osAuthUrl"),
        ("[AUTHORIZATION]\nosAuthUrl = http://k/v3\nusername = u\n", "password"),
        ("[AUTHORIZATION]\nosAuthUrl = http://k/v3\nusername = u\npassword = p\n", "osProjectName"),
        ("[AUTHORIZATION]\nosAuthUrl = ftp://k/v3\nusername = u\npassword = p\n", "http(s) URL"),
        (f"password = {SECRET}\n", "not a valid INI file (line 1)"),
    ],
)
def test_bad_files_say_what_is_wrong_without_the_secret(tmp_path, text, expected):
    with pytest.raises(CredentialsError) as caught:
        load_file(write(tmp_path, text))
    assert expected in str(caught.value)
    assert SECRET not in str(caught.value)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(CredentialsError, match="does not exist"):
        load_file(tmp_path / "nope.cfg")


def test_swift_v1_environment():
    creds = from_environment({"ST_AUTH": "http://s/auth/v1.0", "ST_USER": "a:b", "ST_KEY": SECRET})
    assert (creds.kind, creds.username, creds.secret) == ("v1", "a:b", SECRET)


def test_os_password_environment():
    env = {
        "OS_AUTH_URL": "http://k:5000/v3",
        "OS_USERNAME": "u",
        "OS_PASSWORD": SECRET,
        "OS_PROJECT_NAME": "p",
        "OS_USER_DOMAIN_NAME": "d",
        "OS_REGION_NAME": "r",
    }
    creds = from_environment(env)
    assert (creds.kind, creds.user_domain, creds.region) == ("password", "d", "r")


def test_os_application_credential_environment():
    env = {
        "OS_AUTH_URL": "http://k:5000/v3",
        "OS_APPLICATION_CREDENTIAL_ID": "id",
        "OS_APPLICATION_CREDENTIAL_SECRET": SECRET,
    }
    assert from_environment(env).kind == "application"


def test_incomplete_environment_is_an_error():
    with pytest.raises(CredentialsError, match="ST_KEY"):
        from_environment({"ST_AUTH": "http://s/auth/v1.0", "ST_USER": "a:b"})


def test_explicit_file_wins_over_environment(tmp_path):
    path = write(
        tmp_path,
        "[AUTHORIZATION]\nosAuthUrl = http://s/auth/v1.0\nusername = file:user\npassword = k\n",
    )
    env = {"ST_AUTH": "http://s/auth/v1.0", "ST_USER": "env:user", "ST_KEY": "k"}
    assert resolve(str(path), env).username == "file:user"
    assert resolve(None, env).username == "env:user"
