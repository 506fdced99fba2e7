"""Helpers for tests that run pman against the test cluster and a real Swift."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes
import requests
import yaml
from flask import Flask

from pman.settings import Settings
from tests.fixtures.cluster import KubeCluster, unique_name
from tests.pman.conftest import pfcon_request
from tests.pman.server import pman_server

FINISHED = ("finishedSuccessfully", "finishedWithError")

# A processor that needs no image: the venv's python3 is first on the pods' PATH.
COPY_INPUT = (
    "import os, shutil, sys; out = sys.argv[-1]; os.makedirs(out, exist_ok=True); "
    "print('args:', ' '.join(sys.argv[1:])); print('env:', os.environ.get('CHRIS_JID')); "
    "shutil.copytree('/share/incoming', out, dirs_exist_ok=True)"
)


@dataclass
class Pman:
    """A pman served over HTTP for a test module, and the jobs it submitted."""

    url: str
    app: Flask
    cluster: KubeCluster
    jids: list[str] = field(default_factory=list)

    def submit(self, *, expect: int = 201, **changes: Any) -> dict[str, Any]:
        """POST a pfcon-shaped request (a fresh jid unless given); the answer's JSON."""
        body = pfcon_request(**{"jid": unique_name("job"), **changes})
        response = requests.post(f"{self.url}/api/v1/", json=body, timeout=30)
        assert response.status_code == expect, response.text
        if expect == 201:
            self.jids.append(response.json()["jid"])
        return response.json()

    def get(self, jid: str) -> requests.Response:
        return requests.get(f"{self.url}/api/v1/{jid}/", timeout=30)

    def delete(self, jid: str) -> requests.Response:
        return requests.delete(f"{self.url}/api/v1/{jid}/", timeout=30)

    def wait(
        self,
        jid: str,
        until: Callable[[dict], bool] = lambda j: j["status"] in FINISHED,
        *,
        timeout: float = 90,
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Poll as a client does until ``until(job)``; the last job and every one seen."""
        seen: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            response = self.get(jid)
            assert response.status_code == 200, response.text
            seen.append(response.json())
            if until(seen[-1]):
                return seen[-1], seen
            time.sleep(0.1)
        raise AssertionError(f"{jid} never reached the awaited state; last: {seen[-1]}")

    def kube_requests(self) -> dict[str, int]:
        """Kubernetes requests by operation made by this pman so far."""
        counts: dict[str, int] = {}
        for metric in self.app.extensions["pman"].metrics.registry.collect():
            for sample in metric.samples:
                if sample.name == "pman_kubernetes_request_duration_seconds_count":
                    counts[sample.labels["operation"]] = int(sample.value)
        return counts

    def cleanup(self) -> None:
        with self.cluster.api_client() as api:
            batch = kubernetes.client.BatchV1Api(api)
            for jid in self.jids:
                try:
                    batch.delete_namespaced_job(
                        jid, self.cluster.namespace, propagation_policy="Background"
                    )
                except kubernetes.client.ApiException as error:
                    if error.status != 404:
                        raise


@contextmanager
def running_pman(cluster: KubeCluster, **settings: Any) -> Iterator[Pman]:
    """pman on the test cluster with ``settings``; deletes its jobs afterwards."""
    base = Settings(kubeconfig=cluster.kubeconfig, job_namespace=cluster.namespace)
    with pman_server(base.replace(**settings)) as (url, app):
        handle = Pman(url, app, cluster)
        try:
            yield handle
        finally:
            handle.cleanup()


@contextmanager
def swift_secret(cluster: KubeCluster, credentials: Path) -> Iterator[str]:
    """A Secret holding ``swift-credentials.cfg``; its name."""
    name = unique_name("swift")
    body = {
        "metadata": {"name": name},
        "data": {"swift-credentials.cfg": base64.b64encode(credentials.read_bytes()).decode()},
    }
    with cluster.api_client() as api:
        core = kubernetes.client.CoreV1Api(api)
        core.create_namespaced_secret(cluster.namespace, body)
        try:
            yield name
        finally:
            core.delete_namespaced_secret(name, cluster.namespace)


def job_pods(cluster: KubeCluster, jid: str) -> list[Any]:
    with cluster.api_client() as api:
        pods = kubernetes.client.CoreV1Api(api).list_namespaced_pod(
            cluster.namespace, label_selector=f"pman.chrisproject.org/jid={jid}"
        )
    return pods.items


def read_job(cluster: KubeCluster, jid: str) -> dict[str, Any]:
    with cluster.api_client() as api:
        return api.sanitize_for_serialization(
            kubernetes.client.BatchV1Api(api).read_namespaced_job(jid, cluster.namespace)
        )


def kubeconfig_with_token(cluster: KubeCluster, directory: Path, token: str) -> Path:
    """The cluster's kubeconfig with another bearer token."""
    config = yaml.safe_load(Path(cluster.kubeconfig).read_text())
    for user in config["users"]:
        user["user"] = {"token": token}
    path = directory / "other-token-kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path
