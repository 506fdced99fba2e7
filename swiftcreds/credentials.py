"""Swift credentials: parsed from a `swift-credentials.cfg` or from ST_* / OS_* variables.

Three kinds:

- ``v1``: Swift v1 auth (tempauth and compatibles): auth URL, user, key.
- ``password``: Keystone v3 password: auth URL, user (and domain), password, project (and
  domain), optional region.
- ``application``: Keystone v3 application credential: auth URL, id, secret.

A `Credentials` object never shows its secret in `repr()` or `describe()`, and parse errors
name the file and the field, never a value.
"""

from __future__ import annotations

import configparser
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse


class CredentialsError(ValueError):
    """No usable credentials: missing or unreadable file, malformed file, missing field."""


@dataclass(frozen=True)
class Credentials:
    """Everything needed to authenticate; `secret` is the password, key or app secret."""

    kind: str
    auth_url: str
    secret: str = field(repr=False)
    username: str = ""
    user_domain: str = "Default"
    project_name: str = ""
    project_domain: str = "Default"
    region: str = ""
    app_credential_id: str = ""
    source: str = ""

    def describe(self) -> str:
        """A sentence for messages: what kind, which user, where (no secret)."""
        who = self.app_credential_id if self.kind == "application" else self.username
        label = {
            "v1": "Swift v1 user",
            "password": "Keystone user",
            "application": "Keystone application credential",
        }
        return f"{label[self.kind]} {who!r} at {self.auth_url}"


def load_file(path: Path) -> Credentials:
    """Parse a swift-credentials.cfg (INI) file."""
    parser = configparser.RawConfigParser()  # raw: a '%' in a password is just a '%'
    try:
        with open(path, encoding="utf-8") as handle:
            parser.read_file(handle)
    except FileNotFoundError:
        raise CredentialsError(f"credentials file {path} does not exist") from None
    except PermissionError:
        raise CredentialsError(f"credentials file {path} is not readable") from None
    except OSError as exc:
        # A directory, a dangling mount, an I/O error: all mean the file cannot be used.
        reason = exc.strerror or type(exc).__name__
        raise CredentialsError(f"credentials file {path} cannot be read: {reason}") from None
    except (configparser.Error, UnicodeDecodeError) as exc:
        # configparser's messages quote the offending line, which may hold a secret.
        line = getattr(exc, "lineno", None)
        where = f" (line {line})" if line else ""
        raise CredentialsError(
            f"credentials file {path} is not a valid INI file{where}: expected "
            "[AUTHORIZATION] with osAuthUrl and the other documented keys"
        ) from None
    return from_sections(_sections(parser), source=str(path))


def _sections(parser: configparser.RawConfigParser) -> dict[str, dict[str, str]]:
    # Keys are matched case-insensitively (configparser lowercases them); sections too.
    return {
        name.upper(): {k: v.strip() for k, v in parser.items(name) if v.strip()}
        for name in parser.sections()
    }


def from_sections(sections: Mapping[str, Mapping[str, str]], *, source: str) -> Credentials:
    """Build credentials from the parsed INI sections (see the module docstring)."""
    auth = dict(sections.get("AUTHORIZATION", {}))
    project = sections.get("PROJECT", {})
    secret = sections.get("SECRET", {})
    if not auth:
        raise CredentialsError(f"{source}: missing the [AUTHORIZATION] section")
    url = _required(auth, "osauthurl", source, "[AUTHORIZATION] osAuthUrl")
    _check_url(url, source)
    region = auth.get("osregionname") or auth.get("region") or ""
    app_id = auth.get("applicationcredentialid") or secret.get("applicationid", "")
    if app_id:
        app_secret = auth.get("applicationcredentialsecret") or secret.get("applicationsecret")
        if not app_secret:
            raise CredentialsError(f"{source}: missing applicationCredentialSecret")
        return Credentials(
            "application", url, app_secret, app_credential_id=app_id, region=region, source=source
        )
    username = _required(auth, "username", source, "[AUTHORIZATION] username")
    password = _required(auth, "password", source, "[AUTHORIZATION] password")
    if _is_v1(url, auth.get("authversion", "")):
        return Credentials("v1", url, password, username=username, source=source)
    return Credentials(
        "password",
        url,
        password,
        username=username,
        user_domain=auth.get("osuserdomain") or auth.get("userdomain") or "Default",
        project_name=_required(project, "osprojectname", source, "[PROJECT] osProjectName"),
        project_domain=project.get("osprojectdomain") or "Default",
        region=region,
        source=source,
    )


def from_environment(env: Mapping[str, str]) -> Credentials | None:
    """ST_AUTH/ST_USER/ST_KEY (v1), or the OS_* variables of python-swiftclient users."""
    if env.get("ST_AUTH"):
        for name in ("ST_USER", "ST_KEY"):
            if not env.get(name):
                raise CredentialsError(f"ST_AUTH is set but {name} is not")
        _check_url(env["ST_AUTH"], "ST_AUTH")
        return Credentials(
            "v1", env["ST_AUTH"], env["ST_KEY"], username=env["ST_USER"], source="ST_*"
        )
    if not env.get("OS_AUTH_URL"):
        return None
    url = env["OS_AUTH_URL"]
    _check_url(url, "OS_AUTH_URL")
    region = env.get("OS_REGION_NAME", "")
    if env.get("OS_APPLICATION_CREDENTIAL_ID"):
        if not env.get("OS_APPLICATION_CREDENTIAL_SECRET"):
            raise CredentialsError("OS_APPLICATION_CREDENTIAL_SECRET is not set")
        return Credentials(
            "application",
            url,
            env["OS_APPLICATION_CREDENTIAL_SECRET"],
            app_credential_id=env["OS_APPLICATION_CREDENTIAL_ID"],
            region=region,
            source="OS_*",
        )
    for name in ("OS_USERNAME", "OS_PASSWORD"):
        if not env.get(name):
            raise CredentialsError(f"OS_AUTH_URL is set but {name} is not")
    project = env.get("OS_PROJECT_NAME") or env.get("OS_TENANT_NAME") or ""
    if not project:
        raise CredentialsError("OS_AUTH_URL is set but OS_PROJECT_NAME is not")
    return Credentials(
        "password",
        url,
        env["OS_PASSWORD"],
        username=env["OS_USERNAME"],
        user_domain=env.get("OS_USER_DOMAIN_NAME") or "Default",
        project_name=project,
        project_domain=env.get("OS_PROJECT_DOMAIN_NAME") or "Default",
        region=region,
        source="OS_*",
    )


def _required(section: Mapping[str, str], key: str, source: str, label: str) -> str:
    value = section.get(key, "")
    if not value:
        raise CredentialsError(f"{source}: missing {label}")
    return value


def _check_url(url: str, source: str) -> None:
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise CredentialsError(f"{source}: the auth URL must be an http(s) URL")


def _is_v1(url: str, version: str) -> bool:
    if version:
        return version.strip().lstrip("v") in ("1", "1.0")
    return urlparse(url).path.rstrip("/").endswith(("/auth/v1.0", "/auth/v1"))
