"""pman's pfcon API as CUBE uses it, for tests: its settings, a raw-HTTP client that logs in
and sends CUBE's forms, and CUBE-shaped data in Swift (``home/<user>/feeds/feed_<n>/...``).

python-pfconclient itself drives the end-to-end test (tests/e2e/test_chris.py); this client
is raw HTTP so that tests see every status code and header.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests

from tests.support.names import unique_name
from tests.support.swift import delete_container
from tests.support.waiting import states_until

USER = "cube"
PASSWORD = "cube-password-for-tests"
SECRET_KEY = "a-secret-key-for-the-tests-of-the-pfcon-api"
BASE = "/pfcon/api/v1/"
FINISHED = ("finishedSuccessfully", "finishedWithError", "undefined")

Job = dict[str, Any]
Form = list[tuple[str, str]]


def pfcon_settings(container: str) -> dict[str, Any]:
    """The settings that turn the pfcon API on, over CUBE's container ``container``."""
    return {
        "pfcon_user": USER,
        "pfcon_password": PASSWORD,
        "pfcon_secret_key": SECRET_KEY,
        "swift_container_name": container,
    }


def pfcon_env(container: str) -> dict[str, str]:
    """The same as environment variables, for a ``pman serve`` process."""
    return {
        "PFCON_USER": USER,
        "PFCON_PASSWORD": PASSWORD,
        "PFCON_SECRET_KEY": SECRET_KEY,
        "SWIFT_CONTAINER_NAME": container,
    }


def plugin_form(
    jid: str,
    script: str,
    *,
    kind: str = "ds",
    input_dirs: list[str],
    output_dir: str,
    user: str = "alice",
    args: list[str] | None = None,
    **changes: str,
) -> Form:
    """The form CUBE POSTs for a plugin instance (its real request's fields and order),
    whose plugin is ``python3 -c script`` (the pods run programs of this machine)."""
    form: Form = [("entrypoint", "python3"), ("entrypoint", "-c"), ("entrypoint", script)]
    form += [("args", arg) for arg in args or []]
    scalars = {
        "auid": user,
        "number_of_workers": "1",
        "cpu_limit": "1000",
        "memory_limit": "200",
        "gpu_limit": "0",
        "image": "fnndsc/pl-test",
        "type": kind,
        **changes,
    }
    form += list(scalars.items())
    form += [("env", f"CHRIS_JID={jid}"), ("env", f"CHRIS_USER_USERNAME={user}")]
    form += [("input_dirs", folder) for folder in input_dirs]
    form += [("output_dir", output_dir), ("jid", jid)]
    return form


def feed_output(user: str, feed: int, plugin: str, instance: int) -> str:
    """Where CUBE keeps a plugin instance's output."""
    return f"home/{user}/feeds/feed_{feed}/{plugin}_{instance}/data"


@dataclass
class PfconClient:
    """CUBE's side of the pfcon API, over raw HTTP; remembers the jids it submitted."""

    url: str
    """The compute resource's URL as registered in CUBE (ends with ``/api/v1/``)."""
    jids: list[str] = field(default_factory=list)
    token: str = ""

    def login(self) -> str:
        response = requests.post(
            f"{self.url}auth-token/",
            json={"pfcon_user": USER, "pfcon_password": PASSWORD},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        self.token = response.json()["token"]
        return self.token

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token or self.login()}"}

    def post(self, form: Form) -> requests.Response:
        response = requests.post(
            f"{self.url}pluginjobs/", data=form, headers=self.headers, timeout=200
        )
        if response.status_code == 201:
            self.jids.append(response.json()["compute"]["jid"])
        return response

    def submit(self, form: Form) -> Job:
        response = self.post(form)
        assert response.status_code == 201, response.text
        return response.json()["compute"]

    def get(self, jid: str) -> requests.Response:
        return requests.get(f"{self.url}pluginjobs/{jid}/", headers=self.headers, timeout=100)

    def files(self, jid: str, path: str) -> requests.Response:
        """The file list, the path appended unencoded as python-pfconclient does."""
        return requests.get(
            f"{self.url}pluginjobs/{jid}/file/?job_output_path={path}",
            headers=self.headers,
            timeout=500,
        )

    def delete(self, jid: str, kind: str = "pluginjobs") -> requests.Response:
        return requests.delete(f"{self.url}{kind}/{jid}/", headers=self.headers, timeout=200)

    def wait(
        self,
        jid: str,
        until: Callable[[Job], bool] = lambda job: job["status"] in FINISHED,
        *,
        timeout: float = 120,
    ) -> tuple[Job, list[Job]]:
        """Poll as CUBE does until ``until(job)``; the last compute object and all seen."""

        def read() -> Job:
            response = self.get(jid)
            assert response.status_code == 200, response.text
            return response.json()["compute"]

        what = f"{jid} reaching the awaited state"
        return states_until(read, until, timeout=timeout, interval=0.2, what=what)


def cube_jid() -> str:
    """A jid as CUBE makes them (``chris-jid-<n>``), unique."""
    return unique_name("chris-jid")


def put_objects(connection: Any, container: str, objects: dict[str, bytes]) -> None:
    """CUBE's files (and links) in its container."""
    connection.put_container(container)
    for name, data in objects.items():
        connection.put_object(container, name, data)


@pytest.fixture(scope="module")
def cube(swift_server: Any) -> Iterator[str]:
    """CUBE's Swift container for one module (and pman's bookkeeping and segments
    containers beside it), deleted afterwards."""
    name = unique_name("cube")
    swift_server.connection().put_container(name)
    yield name
    for container in (name, f"{name}_pman", f"{name}_segments"):
        delete_container(swift_server.connection(), container)
