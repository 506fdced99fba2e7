"""What keystoneauth1 and python-swiftclient need from a `Credentials`: built, not used.

Constructing a keystoneauth1 plugin or session makes no request; the first token is
fetched when the caller first uses it, so errors of the auth service stay the caller's
to translate.
"""

from __future__ import annotations

from typing import Any

from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3

from swiftcreds.credentials import Credentials


def keystone_plugin(creds: Credentials) -> v3.Password | v3.ApplicationCredential:
    """The Keystone v3 auth plugin for password or application credentials."""
    if creds.kind == "v1":
        raise ValueError("Swift v1 credentials do not authenticate with Keystone")
    url = creds.auth_url.rstrip("/")
    if not url.endswith("/v3"):
        url += "/v3"  # only Keystone v3 is supported; accept the unversioned URL too
    if creds.kind == "application":
        return v3.ApplicationCredential(
            auth_url=url,
            application_credential_id=creds.app_credential_id,
            application_credential_secret=creds.secret,
        )
    return v3.Password(
        auth_url=url,
        username=creds.username,
        password=creds.secret,
        user_domain_name=creds.user_domain,
        project_name=creds.project_name,
        project_domain_name=creds.project_domain,
    )


def swiftclient_options(creds: Credentials, *, timeout: float) -> dict[str, Any]:
    """Keyword arguments of ``swiftclient.client.Connection`` that authenticate as ``creds``.

    Keystone credentials come as a keystoneauth1 session (it caches and renews the token);
    the Swift endpoint is the catalog's public ``object-store`` one, in the region if set.
    """
    if creds.kind == "v1":
        return {
            "authurl": creds.auth_url,
            "user": creds.username,
            "key": creds.secret,
            "auth_version": "1",
            "timeout": timeout,
        }
    session = ks_session.Session(auth=keystone_plugin(creds), timeout=timeout)
    options: dict[str, Any] = {"service_type": "object-store", "interface": "public"}
    if creds.region:
        options["region_name"] = creds.region
    return {"session": session, "os_options": options, "timeout": timeout}
