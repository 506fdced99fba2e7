"""The Kubernetes module's translations that need no cluster to be seen."""

from __future__ import annotations

import pytest

from pman.errors import BadRequest, ClusterUnavailable
from pman.kube import Kube
from pman.settings import Settings
from tests.support.pman_server import unreachable_kubeconfig


@pytest.fixture
def kube(tmp_path):
    client = Kube(Settings(kubeconfig=str(unreachable_kubeconfig(tmp_path))))
    yield client
    client.close()


def test_a_body_the_client_refuses_is_a_bad_request_before_any_request(kube):
    manifest = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "x"},
        "spec": {"bogus": 1},
    }
    with pytest.raises(BadRequest, match="the Kubernetes client refused the jobs") as caught:
        kube.create_job(manifest)
    assert type(caught.value.__cause__).__name__ == "ValidationError"
    assert kube.metrics.kube_requests() == 1  # timed, but refused before the network


def test_an_unreachable_api_is_cluster_unavailable_with_the_cause_kept(kube):
    with pytest.raises(ClusterUnavailable, match="unreachable") as caught:
        kube.read_job("x")
    assert caught.value.__cause__ is not None


def test_a_missing_kubeconfig_is_named(tmp_path):
    with pytest.raises(ClusterUnavailable, match="no usable Kubernetes configuration"):
        Kube(Settings(kubeconfig=str(tmp_path / "absent")))
