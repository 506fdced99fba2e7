"""Keystone v3 credentials (password and application credential) against a real Keystone."""

from __future__ import annotations

import json

from tests.support.publisher import run_publisher
from tests.support.trees import read_tree, write_tree


def round_trip(tmp_path, creds, container: str) -> None:
    src = write_tree(tmp_path / "out", {"a.txt": b"from keystone", "d/b": b"x" * 1000})
    up = run_publisher(
        "upload", "-v", "--json", "--credentials", str(creds), str(src), f"swift://{container}/out"
    )
    assert up.code == 0, up.stderr
    dest = tmp_path / "in"
    down = run_publisher(
        "download", "-v", "--credentials", str(creds), f"swift://{container}/out", str(dest)
    )
    assert down.code == 0, down.stderr
    assert read_tree(dest) == {"a.txt": b"from keystone", "d/b": b"x" * 1000}
    return up, down


def test_keystone_password_file(tmp_path, keystone_swift, swift_container):
    creds = keystone_swift.write_credentials(tmp_path / "swift-credentials.cfg")
    up, down = round_trip(tmp_path, creds, swift_container)
    summary = json.loads(up.stdout)
    assert summary["files"] == 2
    for output in (up.stdout, up.stderr, down.stdout, down.stderr):
        assert keystone_swift.password not in output


def test_keystone_application_credential(tmp_path, keystone_swift, swift_container):
    creds = keystone_swift.write_credentials(tmp_path / "swift-credentials.cfg", kind="application")
    up, down = round_trip(tmp_path, creds, swift_container)
    for output in (up.stdout, up.stderr, down.stdout, down.stderr):
        assert keystone_swift.app_credential_secret not in output


def test_keystone_os_environment(tmp_path, keystone_swift, swift_container):
    env = {
        "OS_AUTH_URL": keystone_swift.auth_url,
        "OS_USERNAME": keystone_swift.username,
        "OS_PASSWORD": keystone_swift.password,
        "OS_PROJECT_NAME": keystone_swift.project_name,
        "OS_USER_DOMAIN_NAME": "Default",
        "OS_PROJECT_DOMAIN_NAME": "Default",
    }
    src = write_tree(tmp_path / "out", {"f": b"1"})
    result = run_publisher("upload", str(src), f"swift://{swift_container}/out", env=env)
    assert result.code == 0, result.stderr


def test_keystone_wrong_password_is_exit_4_without_the_secret(tmp_path, keystone_swift):
    creds = tmp_path / "bad.cfg"
    creds.write_text(
        f"[AUTHORIZATION]\nosAuthUrl = {keystone_swift.auth_url}\n"
        f"username = {keystone_swift.username}\npassword = not-the-password-123\n"
        f"[PROJECT]\nosProjectDomain = Default\nosProjectName = {keystone_swift.project_name}\n"
    )
    result = run_publisher(
        "download", "--credentials", str(creds), "swift://c/in", str(tmp_path / "d")
    )
    assert result.code == 4
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Keystone refused the credentials" in result.stderr
    assert "not-the-password-123" not in result.stderr
