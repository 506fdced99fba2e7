"""Fixtures for the local cluster's tests: API clients for the session's cluster."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import kubernetes
import pytest

from localcluster.cluster import LocalCluster
from tests.support.cluster import KubeCluster
from tests.support.kube import delete_job


@pytest.fixture(scope="session")
def api(kube_cluster: KubeCluster) -> Iterator[kubernetes.client.ApiClient]:
    with kube_cluster.api_client() as client:
        yield client


@pytest.fixture(scope="session")
def core(api: kubernetes.client.ApiClient) -> kubernetes.client.CoreV1Api:
    return kubernetes.client.CoreV1Api(api)


@pytest.fixture(scope="session")
def batch(api: kubernetes.client.ApiClient) -> kubernetes.client.BatchV1Api:
    return kubernetes.client.BatchV1Api(api)


@pytest.fixture(scope="session")
def namespace(kube_cluster: KubeCluster) -> str:
    return kube_cluster.namespace


@pytest.fixture
def local(kube_cluster: KubeCluster) -> LocalCluster:
    """The local cluster itself; tests using it are skipped against a real cluster."""
    if kube_cluster.local is None:
        pytest.skip("needs the local cluster")
    return kube_cluster.local


@pytest.fixture
def jobs(batch: kubernetes.client.BatchV1Api, namespace: str) -> Iterator[Callable[[dict], Any]]:
    """Creates Jobs from manifests; deletes them (and their pods) after the test."""
    created: list[str] = []

    def create(manifest: dict) -> Any:
        job = batch.create_namespaced_job(namespace, manifest)
        created.append(job.metadata.name)
        return job

    yield create
    for name in created:
        delete_job(batch, namespace, name)
