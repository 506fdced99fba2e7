"""Helpers for tests that run pman against the test cluster and a real Swift."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml
from flask import Flask

from pman.settings import Settings
from tests.support.bodies import pfcon_request
from tests.support.cluster import KubeCluster
from tests.support.names import unique_name
from tests.support.pman_server import pman_server
from tests.support.rest import PmanClient, delete_jobs

# Copies the files under ``src`` into ``out``, as a processor must where its output directory
# is not its own (in the volume modes the kubelet or the client made it, as another UID):
# shutil.copytree would also set the input directory's mode and times on it, which only its
# owner may.
COPY_FILES = (
    "for top, _, files in os.walk(src):\n"
    "    here = os.path.join(out, os.path.relpath(top, src))\n"
    "    os.makedirs(here, exist_ok=True)\n"
    "    for name in files:\n"
    "        shutil.copy(os.path.join(top, name), here)\n"
)
# A processor that needs no image: the venv's python3 is first on the pods' PATH.
COPY_INPUT = (
    "import os, shutil, sys; src, out = '/share/incoming', sys.argv[-1]; "
    "os.makedirs(out, exist_ok=True); "
    "print('args:', ' '.join(sys.argv[1:])); print('env:', os.environ.get('CHRIS_JID'))\n"
    + COPY_FILES
)


@dataclass
class Pman(PmanClient):
    """A pman served over HTTP for a test module, and the jobs it submitted."""

    app: Flask = field(kw_only=True)
    cluster: KubeCluster = field(kw_only=True)

    def submit(self, *, expect: int = 201, **changes: Any) -> dict[str, Any]:
        """POST a pfcon-shaped request (a fresh jid unless given); the answer's JSON."""
        body = pfcon_request(**{"jid": unique_name("job"), **changes})
        response = self.post(body)
        assert response.status_code == expect, response.text
        return response.json()

    def kube_requests(self) -> dict[str, int]:
        """Kubernetes requests by operation made by this pman so far."""
        counts: dict[str, int] = {}
        for metric in self.app.extensions["pman"].metrics.registry.collect():
            for sample in metric.samples:
                if sample.name == "pman_kubernetes_request_duration_seconds_count":
                    counts[sample.labels["operation"]] = int(sample.value)
        return counts

    def cleanup(self) -> None:
        delete_jobs(self.cluster, self.jids)


@contextmanager
def running_pman(cluster: KubeCluster, **settings: Any) -> Iterator[Pman]:
    """pman on the test cluster with ``settings``; deletes its jobs afterwards."""
    base = Settings(kubeconfig=cluster.kubeconfig, job_namespace=cluster.namespace)
    with pman_server(base.replace(**settings)) as (url, app):
        handle = Pman(url, app=app, cluster=cluster)
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


def publisher_requests(cluster: KubeCluster, pod: str) -> int:
    """API requests the job's publish container made about its pod (the local cluster's
    audit log): once it has listed its pod, it is watching, and handles SIGTERM."""
    assert cluster.audit_log is not None, "needs the local cluster's audit log"
    lines = Path(cluster.audit_log).read_text().splitlines()
    return sum(
        1
        for event in map(json.loads, lines)
        if "pman-publisher" in event.get("user", {}).get("username", "")
        and pod in event.get("requestURI", "")
    )


@pytest.fixture(scope="module")
def secret(kube_cluster: KubeCluster, swift_credentials_file: Path) -> Iterator[str]:
    """The test Swift's credentials as a Secret job pods mount, for one module."""
    with swift_secret(kube_cluster, swift_credentials_file) as name:
        yield name
