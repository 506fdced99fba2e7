"""A real OpenStack Keystone v3 on 127.0.0.1, and a Swift proxy that authenticates with it.

Keystone and keystonemiddleware have dependency pins of their own, so they live in a
separate virtualenv (created on first use, then reused). `KeystoneSwift` starts Keystone
(sqlite, fernet tokens), creates a project, a user with the `member` role, an application
credential and the object-store endpoint, then adds a proxy in front of an existing
`SwiftAIO`'s storage. Used by the tests that exercise Keystone credentials.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import subprocess
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from devstack.processes import HOST, ServerProcess, free_port, wait_for_http
from devstack.swiftaio import SwiftAIO, SwiftStartError

REQUIREMENTS = ("keystone==30.0.0", "keystonemiddleware", "swift")
ADMIN_PASSWORD = "admin-secret"
REGION = "RegionOne"
PIP_QUIET = ("--disable-pip-version-check", "--no-input")

SERVE = """
import os, sys
conf, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
os.environ["OS_KEYSTONE_CONFIG_FILES"] = conf
sys.argv = sys.argv[:1]  # oslo.config parses the command line on import
from keystone.wsgi.api import application
from werkzeug.serving import run_simple
run_simple(host, port, application, threaded=True)
"""


def ensure_venv(venv: Path) -> str:
    """Create (once) a virtualenv with Keystone, keystonemiddleware and Swift; return its python."""
    venv = Path(venv)
    python = venv / "bin" / "python"
    stamp = venv / ".installed"
    want = "\n".join(REQUIREMENTS)
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{venv}.lock", "w") as lock:
        # Two test runs on one checkout must not build the same venv at once.
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp.exists() and stamp.read_text() == want and python.exists():
            return str(python)
        base = getattr(sys, "_base_executable", sys.executable)
        _run([base, "-m", "venv", "--clear", str(venv)], what="creating the Keystone venv")
        _run(
            [str(python), "-m", "pip", "install", "-q", *PIP_QUIET, *REQUIREMENTS],
            what="installing Keystone",
        )
        stamp.write_text(want)
    return str(python)


def _run(argv: list[str], *, what: str) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-5:]
        raise SwiftStartError(f"{what} failed: " + "\n".join(tail))


@dataclass
class KeystoneSwift:
    """Keystone v3 plus a Keystone-authenticated proxy in front of `swift`'s storage."""

    swift: SwiftAIO
    directory: Path
    venv: Path
    username: str = "pman-user"
    password: str = field(default_factory=lambda: secrets.token_hex(12))
    project_name: str = "pman"
    project_domain: str = "Default"
    user_domain: str = "Default"
    region: str = REGION
    app_credential_id: str = ""
    app_credential_secret: str = ""
    project_id: str = ""
    proxy_url: str = ""
    port: int = 0
    _process: ServerProcess | None = None

    @property
    def auth_url(self) -> str:
        return f"http://{HOST}:{self.port}/v3"

    def __enter__(self) -> KeystoneSwift:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, *, timeout: float = 60.0) -> None:
        self.directory = Path(self.directory).resolve()
        self.directory.mkdir(parents=True, exist_ok=True)
        python = ensure_venv(self.venv)
        try:
            self._start_keystone(python, timeout=timeout)
            # The proxy only talks to Keystone per request: start it while Keystone loads.
            self.proxy_url = self.swift.add_keystone_proxy(
                python=python,
                keystone_url=f"http://{HOST}:{self.port}",
                service_user="admin",
                service_password=ADMIN_PASSWORD,
                service_project="admin",
            )
            self._wait_keystone(timeout=timeout)
            token = self._token("admin", ADMIN_PASSWORD, "admin")
            self._create_user(token)
            self._create_endpoint(token)
            self._create_app_credential()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop()
        if "keystone-proxy" in self.swift.ports:
            self.swift.stop_server("keystone-proxy")

    def write_credentials(self, path: Path | str, *, kind: str = "password") -> Path:
        """Write a swift-credentials.cfg using a password or the application credential."""
        path = Path(path)
        if kind == "password":
            body = (
                f"[AUTHORIZATION]\nosAuthUrl = {self.auth_url}\nusername = {self.username}\n"
                f"password = {self.password}\nosUserDomain = {self.user_domain}\n"
                f"osRegionName = {self.region}\n"
                f"[PROJECT]\nosProjectDomain = {self.project_domain}\n"
                f"osProjectName = {self.project_name}\n"
            )
        else:
            body = (
                f"[AUTHORIZATION]\nosAuthUrl = {self.auth_url}\n"
                f"applicationCredentialId = {self.app_credential_id}\n"
                f"applicationCredentialSecret = {self.app_credential_secret}\n"
            )
        path.write_text(body)
        path.chmod(0o600)
        return path

    # -- Keystone itself ---------------------------------------------------------------
    def _start_keystone(self, python: str, *, timeout: float) -> None:
        self.port = free_port()
        conf = self._write_conf()
        manage = [str(Path(python).parent / "keystone-manage"), "--config-file", str(conf)]
        user = ["--keystone-user", str(os.getuid()), "--keystone-group", str(os.getgid())]
        # Independent steps, each mostly import time: run them side by side.
        with ThreadPoolExecutor(3) as pool:
            steps = [
                pool.submit(_run, [*manage, step, *extra], what=f"keystone-manage {step}")
                for step, extra in (
                    ("db_sync", []),
                    ("fernet_setup", user),
                    ("credential_setup", user),
                )
            ]
            for step in steps:
                step.result()
        url = f"http://{HOST}:{self.port}/v3"
        _run(
            [
                *manage,
                "bootstrap",
                "--bootstrap-password",
                ADMIN_PASSWORD,
                "--bootstrap-admin-url",
                url,
                "--bootstrap-public-url",
                url,
                "--bootstrap-internal-url",
                url,
                "--bootstrap-region-id",
                REGION,
            ],
            what="keystone-manage bootstrap",
        )
        argv = [python, "-c", SERVE, str(conf), HOST, str(self.port)]
        self._process = ServerProcess("keystone", argv, self.directory / "keystone.log")
        self._process.start()

    def _wait_keystone(self, *, timeout: float) -> None:
        assert self._process is not None
        wait_for_http(
            f"http://{HOST}:{self.port}/v3",
            timeout=timeout,
            process=self._process.popen,
            error=SwiftStartError,
        )

    def _write_conf(self) -> Path:
        conf = self.directory / "keystone.conf"
        conf.write_text(
            "[DEFAULT]\n"
            f"log_file = {self.directory / 'keystone-service.log'}\n"
            "[database]\n"
            f"connection = sqlite:///{self.directory / 'keystone.db'}\n"
            "[token]\nprovider = fernet\n"
            f"[fernet_tokens]\nkey_repository = {self.directory / 'fernet-keys'}\n"
            f"[fernet_receipts]\nkey_repository = {self.directory / 'fernet-keys'}\n"
            f"[credential]\nkey_repository = {self.directory / 'credential-keys'}\n"
        )
        return conf

    # -- identity objects through the API ----------------------------------------------
    def _request(self, method: str, path: str, body: dict, *, token: str = "") -> tuple:
        request = urllib.request.Request(
            f"http://{HOST}:{self.port}/v3{path}",
            data=json.dumps(body).encode(),
            method=method,
            headers={"Content-Type": "application/json", "X-Auth-Token": token},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.headers, json.loads(response.read() or b"{}")

    def _token(self, user: str, password: str, project: str) -> str:
        body = {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {"name": user, "domain": {"id": "default"}, "password": password}
                    },
                },
                "scope": {"project": {"name": project, "domain": {"id": "default"}}},
            }
        }
        headers, _ = self._request("POST", "/auth/tokens", body)
        return headers["X-Subject-Token"]

    def _create_user(self, token: str) -> None:
        _, project = self._request(
            "POST", "/projects", {"project": {"name": self.project_name}}, token=token
        )
        self.project_id = project["project"]["id"]
        _, user = self._request(
            "POST",
            "/users",
            {"user": {"name": self.username, "password": self.password}},
            token=token,
        )
        user_id = user["user"]["id"]
        _, roles = self._get("/roles?name=member", token)
        role_id = roles["roles"][0]["id"]
        self._request(
            "PUT", f"/projects/{self.project_id}/users/{user_id}/roles/{role_id}", {}, token=token
        )

    def _create_endpoint(self, token: str) -> None:
        _, service = self._request(
            "POST",
            "/services",
            {"service": {"type": "object-store", "name": "swift"}},
            token=token,
        )
        for interface in ("public", "internal", "admin"):
            endpoint = {
                "service_id": service["service"]["id"],
                "interface": interface,
                "region_id": self.region,
                "url": f"{self.proxy_url}/v1/AUTH_$(project_id)s",
            }
            self._request("POST", "/endpoints", {"endpoint": endpoint}, token=token)

    def _create_app_credential(self) -> None:
        token = self._token(self.username, self.password, self.project_name)
        _, me = self._get("/auth/tokens", token, subject=token)
        user_id = me["token"]["user"]["id"]
        _, cred = self._request(
            "POST",
            f"/users/{user_id}/application_credentials",
            {"application_credential": {"name": "pman-publisher"}},
            token=token,
        )
        self.app_credential_id = cred["application_credential"]["id"]
        self.app_credential_secret = cred["application_credential"]["secret"]

    def _get(self, path: str, token: str, *, subject: str = "") -> tuple:
        headers = {"X-Auth-Token": token}
        if subject:
            headers["X-Subject-Token"] = subject
        request = urllib.request.Request(f"http://{HOST}:{self.port}/v3{path}", headers=headers)
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.headers, json.loads(response.read())
