"""pman deployed on the local cluster from the processed template, as OpenShift would run it.

The Deployment's pod template becomes a pod of the local cluster (through a Job: the local
cluster serves no Deployments, and creates pods only for Jobs), whose kubelet runs its
command (gunicorn) on this machine with the environment the template gives (the API token
from the template's Secret), pman's own service account token in the projected volume,
and the in-cluster configuration (``KUBERNETES_SERVICE_*``, the cluster's CA). The only
changes: pods of the local cluster share this machine's network, so pman listens on a free
loopback port (``PMAN_BIND``) instead of 0.0.0.0:5010; a Job's pod does not restart
(``restartPolicy: Never``).

The template's ServiceAccounts and Secrets are created too, in a namespace of their own,
with the publisher's account (``pman-publisher.yaml``) and the Swift credentials Secret the
operator creates with ``oc create secret generic`` (for the Swift server of the tests) when
the storage is Swift, before pman's pod, which mounts that Secret for its data routes. In a
volume storage mode there is neither: pman starts without the (optional) Secret.
The local cluster does not enforce RBAC (it records every call in its audit log instead),
so the Roles and RoleBindings are checked against that log rather than applied.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import kubernetes
import requests
from kubernetes.client.exceptions import ApiException

from devstack.processes import free_port
from tests.support.cluster import KubeCluster
from tests.support.names import unique_name
from tests.support.openshift import template
from tests.support.openshift.templates import (
    OPENSHIFT,
    SWIFT_TEMPLATES,
    VOLUME_TEMPLATES,
    find,
    pman_env,
)
from tests.support.waiting import eventually

Obj = dict[str, Any]
# Kinds the local cluster serves, created from the processed template.
APPLIED_KINDS = ("ServiceAccount", "Secret")


@dataclass
class DeployedPman:
    """A running pman pod and what it was made from."""

    url: str
    token: str
    namespace: str
    pod: str
    objects: list[Obj]
    core: kubernetes.client.CoreV1Api

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def logs(self) -> str:
        return self.core.read_namespaced_pod_log(self.pod, self.namespace, container="pman")


def processed(namespace: str, parameters: dict[str, str] | None = None) -> list[Obj]:
    """The objects the operator applies: pman.yaml with ``parameters``, and with Swift
    storage the publisher's account."""
    values = {"NAMESPACE": namespace, "GUNICORN_WORKERS": "1", **(parameters or {})}
    swift = values.get("STORAGE_TYPE", "swift") == "swift"
    objects = []
    for name in SWIFT_TEMPLATES if swift else VOLUME_TEMPLATES:
        given = values if name == "pman.yaml" else {"NAMESPACE": namespace}
        objects += template.process(template.load(OPENSHIFT / name), given)["items"]
    return objects


@contextmanager
def deploy(
    cluster: KubeCluster,
    swift: Any,
    *,
    parameters: dict[str, str] | None = None,
    namespace: str | None = None,
    timeout: float = 60,
) -> Iterator[DeployedPman]:
    """Apply the template's objects (with ``parameters``) in a new namespace, run pman's pod,
    wait until ready."""
    namespace = namespace or unique_name("pman-openshift")
    objects = processed(namespace, parameters)
    swift_storage = pman_env(objects)["STORAGE_TYPE"] == "swift"
    port = free_port()
    with cluster.api_client() as api:
        core, batch = kubernetes.client.CoreV1Api(api), kubernetes.client.BatchV1Api(api)
        created: list[tuple[str, str]] = []
        try:
            for obj in objects:
                if obj["kind"] in APPLIED_KINDS:
                    _create(core, namespace, obj)
                    created.append((obj["kind"], obj["metadata"]["name"]))
            if swift_storage:
                secret = _swift_secret(objects, swift)
                _create(core, namespace, secret)
                created.append(("Secret", secret["metadata"]["name"]))
            job = _pman_job(objects, port)
            batch.create_namespaced_job(namespace, job)
            created.append(("Job", job["metadata"]["name"]))
            token = find(objects, "Secret", "pman-api-token")["stringData"]["token"]
            pod = _pod_of(core, namespace, job["metadata"]["name"], timeout=timeout)
            deployed = DeployedPman(
                f"http://127.0.0.1:{port}", token, namespace, pod, objects, core
            )
            _wait_ready(deployed, timeout=timeout)
            yield deployed
        finally:
            for kind, name in reversed(created):
                _delete(core, batch, namespace, kind, name)


def _create(core: kubernetes.client.CoreV1Api, namespace: str, obj: Obj) -> None:
    create = {
        "ServiceAccount": core.create_namespaced_service_account,
        "Secret": core.create_namespaced_secret,
    }[obj["kind"]]
    create(namespace, obj)


def _delete(
    core: kubernetes.client.CoreV1Api,
    batch: kubernetes.client.BatchV1Api,
    namespace: str,
    kind: str,
    name: str,
) -> None:
    delete = {
        "ServiceAccount": core.delete_namespaced_service_account,
        "Secret": core.delete_namespaced_secret,
        "Job": batch.delete_namespaced_job,
    }[kind]
    try:
        delete(name, namespace, propagation_policy="Background")
    except ApiException as error:
        if error.status != 404:
            raise


def _swift_secret(objects: list[Obj], swift: Any) -> Obj:
    # What `oc create secret generic <name> --from-file=swift-credentials.cfg` creates.
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": pman_env(objects)["SWIFT_SECRET_NAME"]},
        "type": "Opaque",
        "stringData": {"swift-credentials.cfg": swift.credentials_text()},
    }


def _pman_job(objects: list[Obj], port: int) -> Obj:
    pod_template = copy.deepcopy(find(objects, "Deployment", "pman")["spec"]["template"])
    spec = pod_template["spec"]
    spec["restartPolicy"] = "Never"
    (container,) = spec["containers"]
    container["env"].append({"name": "PMAN_BIND", "value": f"127.0.0.1:{port}"})
    # Job pods reach pman where it listens: the local cluster has no Service addresses.
    for variable in container["env"]:
        if variable["name"] == "PMAN_SERVICE_URL" and variable.get("value"):
            variable["value"] = f"http://127.0.0.1:{port}/"
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": unique_name("pman")},
        "spec": {"backoffLimit": 0, "template": pod_template},
    }


def _pod_of(core: kubernetes.client.CoreV1Api, namespace: str, job: str, *, timeout: float) -> str:

    def pod() -> str | None:
        pods = core.list_namespaced_pod(namespace, label_selector=f"job-name={job}").items
        return pods[0].metadata.name if pods else None

    return eventually(pod, timeout=timeout, what=f"a pod for {job}")


def _wait_ready(deployed: DeployedPman, *, timeout: float) -> None:
    """Ask the readiness probe's route until it answers 200, as the kubelet would."""

    def ready() -> bool:
        try:
            if requests.get(f"{deployed.url}/readyz", timeout=2).status_code == 200:
                return True
        except (requests.ConnectionError, requests.Timeout):
            pass
        pod = deployed.core.read_namespaced_pod(deployed.pod, deployed.namespace)
        if pod.status.phase in ("Succeeded", "Failed"):
            raise AssertionError(f"pman ended: {pod.status}\n{deployed.logs()}")
        return False

    try:
        eventually(ready, timeout=timeout, interval=0.2, what="pman ready")
    except AssertionError as error:
        raise AssertionError(f"{error}\n{deployed.logs()}") from None
