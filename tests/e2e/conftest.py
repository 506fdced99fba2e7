"""Fixtures of the end-to-end tier: the sample input in Swift, the Swift Secret, a pman.

These tests need the local cluster: job pods reach the Swift server on 127.0.0.1 and run
the sample program from this checkout, which a remote cluster cannot do.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.support.cluster import KubeCluster
from tests.support.pipeline import pman_process, upload_sample
from tests.support.pman_cluster import swift_secret
from tests.support.rest import PmanClient, delete_jobs
from tests.support.swift import delete_container


@pytest.fixture(scope="session")
def local_cluster(kube_cluster: KubeCluster) -> KubeCluster:
    if kube_cluster.local is None:
        pytest.skip("the end-to-end tier needs the local cluster (pods reach 127.0.0.1)")
    return kube_cluster


@pytest.fixture(scope="session")
def secret(local_cluster, swift_credentials_file) -> Iterator[str]:
    """The Secret holding ``swift-credentials.cfg`` for the test Swift server."""
    with swift_secret(local_cluster, swift_credentials_file) as name:
        yield name


@pytest.fixture(scope="module")
def bucket(swift_server) -> Iterator[str]:
    """A Swift container holding the sample input under ``incoming/``."""
    name = f"key-{uuid.uuid4().hex[:12]}"
    connection = swift_server.connection()
    upload_sample(connection, name, "incoming")
    yield name
    delete_container(connection, name)


@pytest.fixture(scope="module")
def pman(local_cluster, secret, tmp_path_factory) -> Iterator[PmanClient]:
    """A ``pman serve`` process for the module; its jobs are deleted afterwards."""
    with pman_process(local_cluster, secret, tmp_path_factory.mktemp("pman")) as process:
        client = PmanClient(process.url)
        try:
            yield client
        finally:
            delete_jobs(local_cluster, client.jids)
