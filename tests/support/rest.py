"""pman's REST API as pfcon uses it, for tests: raw HTTP, polling, and cleaning up jobs.

Shared by the tests that serve pman in-process (``tests/pman``) and those that run it as
a separate process (``tests/e2e``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import kubernetes
import requests

from tests.support.cluster import KubeCluster
from tests.support.waiting import states_until

FINISHED = ("finishedSuccessfully", "finishedWithError")

Job = dict[str, Any]


@dataclass
class PmanClient:
    """Talks to one pman over HTTP as pfcon does; remembers the jids it submitted."""

    url: str
    jids: list[str] = field(default_factory=list)

    def post(self, body: Job) -> requests.Response:
        response = requests.post(f"{self.url}/api/v1/", json=body, timeout=30)
        if response.status_code == 201:
            self.jids.append(response.json()["jid"])
        return response

    def submit(self, body: Job) -> Job:
        response = self.post(body)
        assert response.status_code == 201, response.text
        return response.json()

    def get(self, jid: str) -> requests.Response:
        return requests.get(f"{self.url}/api/v1/{jid}/", timeout=30)

    def delete(self, jid: str) -> requests.Response:
        return requests.delete(f"{self.url}/api/v1/{jid}/", timeout=30)

    def wait(
        self,
        jid: str,
        until: Callable[[Job], bool] = lambda job: job["status"] in FINISHED,
        *,
        timeout: float = 90,
    ) -> tuple[Job, list[Job]]:
        """Poll as a client does until ``until(job)``; the last job object and every one seen."""

        def read() -> Job:
            response = self.get(jid)
            assert response.status_code == 200, response.text
            return response.json()

        what = f"{jid} reaching the awaited state"
        return states_until(read, until, timeout=timeout, interval=0.1, what=what)


def delete_jobs(cluster: KubeCluster, jids: list[str]) -> None:
    """Delete these Jobs and their pods, if they are still there."""
    with cluster.api_client() as api:
        batch = kubernetes.client.BatchV1Api(api)
        for jid in jids:
            try:
                batch.delete_namespaced_job(jid, cluster.namespace, propagation_policy="Background")
            except kubernetes.client.ApiException as error:
                if error.status != 404:
                    raise


def job_pods(cluster: KubeCluster, jid: str) -> list[Any]:
    """The pods of job ``jid``, as the client's models."""
    with cluster.api_client() as api:
        core = kubernetes.client.CoreV1Api(api)
        selector = f"pman.chrisproject.org/jid={jid}"
        return core.list_namespaced_pod(cluster.namespace, label_selector=selector).items
