"""The data routes' settings: where pman finds Swift credentials, and the upload limit."""

from __future__ import annotations

import pytest

from pman.errors import SettingsError
from pman.settings import Settings, parse_size

SECRET = "k3y-n0t-shown"


def test_credentials_file_is_read_at_start(swift_credentials_file):
    settings = Settings.from_env({"SWIFT_CREDENTIALS_FILE": str(swift_credentials_file)})
    assert settings.swift_credentials.kind == "v1"
    assert settings.swift_credentials.source == str(swift_credentials_file)
    # Remembered, so that pman reads the file again when it changes.
    assert settings.swift_credentials_file == swift_credentials_file


def test_st_variables_are_used_without_a_file():
    env = {"ST_AUTH": "http://swift:8080/auth/v1.0", "ST_USER": "a:b", "ST_KEY": SECRET}
    settings = Settings.from_env(env)
    assert settings.swift_credentials.username == "a:b"
    assert settings.swift_credentials_file is None


def test_the_file_wins_over_the_variables(swift_credentials_file):
    env = {
        "SWIFT_CREDENTIALS_FILE": str(swift_credentials_file),
        "ST_AUTH": "http://other:8080/auth/v1.0",
        "ST_USER": "other:user",
        "ST_KEY": SECRET,
    }
    assert Settings.from_env(env).swift_credentials.username != "other:user"


def test_no_credentials_is_fine():
    assert Settings.from_env({}).swift_credentials is None


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"SWIFT_CREDENTIALS_FILE": "/nonexistent/creds.cfg"}, "does not exist"),
        ({"ST_AUTH": "http://s/auth/v1.0", "ST_USER": "a:b"}, "ST_KEY"),
        ({"OS_AUTH_URL": "http://k/v3", "OS_USERNAME": "u", "OS_PASSWORD": SECRET}, "PROJECT"),
        ({"PMAN_MAX_DATA_SIZE": "lots"}, "PMAN_MAX_DATA_SIZE"),
        ({"PMAN_MAX_DATA_SIZE": "0"}, "PMAN_MAX_DATA_SIZE"),
    ],
)
def test_bad_data_settings_are_named_without_secrets(env, expected):
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(env)
    assert expected in str(caught.value)
    assert SECRET not in str(caught.value)


def test_bad_credentials_file_is_named(tmp_path):
    path = tmp_path / "creds.cfg"
    path.write_text(f"[AUTHORIZATION]\nosAuthUrl = http://k/v3\npassword = {SECRET}\n")
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"SWIFT_CREDENTIALS_FILE": str(path)})
    assert "SWIFT_CREDENTIALS_FILE" in str(caught.value)
    assert "username" in str(caught.value)
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize(
    ("raw", "size"),
    [("1048576", 1 << 20), ("500M", 500 << 20), ("2GiB", 2 << 30), ("64kb", 64 << 10)],
)
def test_sizes(raw, size):
    assert parse_size(raw) == size
    assert Settings.from_env({"PMAN_MAX_DATA_SIZE": raw}).max_data_bytes == size


def test_default_limit_is_swifts_largest_object():
    assert Settings().max_data_bytes == 5 << 30
