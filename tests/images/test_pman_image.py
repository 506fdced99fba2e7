"""The pman image under gunicorn, under a UID OpenShift would pick, in group 0, with a
read-only root.

- As the OpenShift template runs it (its container, environment and volumes, the pod's
  service account made from the test cluster's credentials, on a free loopback port):
  ``/healthz`` and ``/readyz`` answer 200 against the test cluster, the API wants the
  template's token and reaches the cluster with it.
- With its own defaults and a cluster that does not answer: the image's HEALTHCHECK passes
  and ``/healthz`` answers 200 while ``/readyz`` answers 503 with a short message.
- With no Kubernetes configuration at all: gunicorn exits at once, with one line saying why.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
import yaml

from devstack.processes import free_port
from tests.support.openshift import template
from tests.support.openshift.templates import OPENSHIFT, find, pman_container, pman_env
from tests.support.podman import (
    Container,
    pod_arguments,
    pod_container,
    restricted,
    secret_directory,
)

pytestmark = pytest.mark.images

# Asks pman inside the container, which may have no network but its own loopback.
ASK = """
import json, sys, urllib.error, urllib.request
try:
    answer = urllib.request.urlopen("http://127.0.0.1:%s" + sys.argv[1], timeout=10)
    print(json.dumps([answer.status, answer.read().decode()]))
except urllib.error.HTTPError as error:
    print(json.dumps([error.code, error.read().decode()]))
"""


def service_account(kubeconfig: str, directory: Path) -> tuple[Path, dict[str, str]]:
    """The kubelet's part of a pod's in-cluster configuration, for the test cluster: the
    token, CA and namespace files, and the KUBERNETES_SERVICE_* variables."""
    config = yaml.safe_load(Path(kubeconfig).read_text())
    context = next(c for c in config["contexts"] if c["name"] == config["current-context"])
    cluster = next(c for c in config["clusters"] if c["name"] == context["context"]["cluster"])
    user = next(u for u in config["users"] if u["name"] == context["context"]["user"])
    token = user["user"].get("token")
    if not token:
        pytest.skip("the test cluster's kubeconfig has no token to mount as a service account's")
    server = cluster["cluster"]
    if "certificate-authority-data" in server:
        ca = base64.b64decode(server["certificate-authority-data"]).decode()
    else:
        ca = Path(server["certificate-authority"]).read_text()
    namespace = context["context"].get("namespace") or "default"
    files = {"token": token, "ca.crt": ca, "namespace": namespace}
    url = urlsplit(server["server"])
    variables = {"KUBERNETES_SERVICE_HOST": url.hostname, "KUBERNETES_SERVICE_PORT": str(url.port)}
    return secret_directory(directory, files), variables


@pytest.fixture(scope="module")
def deployed(images, kube_cluster, swift_server, tmp_path_factory):
    """pman's container from the processed template, running from the image."""
    values = {
        "NAMESPACE": kube_cluster.namespace,
        "PMAN_IMAGE": images.pman,
        "PUBLISHER_IMAGE": images.publisher,
    }
    objects = template.process(template.load(OPENSHIFT / "pman.yaml"), values)["items"]
    container = pman_container(objects)
    assert container["image"] == images.pman
    directory = tmp_path_factory.mktemp("pman-volumes")
    token_dir, kubelet_variables = service_account(kube_cluster.kubeconfig, directory / "token")
    credentials = swift_server.write_credentials(directory / "swift-credentials.cfg").read_text()
    volumes = {
        "tmp": None,
        "swift-credentials": secret_directory(
            directory / "swift", {"swift-credentials.cfg": credentials}
        ),
        "kube-api-access": token_dir,
    }
    port = free_port()
    # The local cluster's pods share this machine's network: a free loopback port instead
    # of 0.0.0.0:5010, as tests/openshift does.
    environment = pman_env(objects) | kubelet_variables | {"PMAN_BIND": f"127.0.0.1:{port}"}
    container = container | {"env": [{"name": k, "value": v} for k, v in environment.items()]}
    options = [*restricted(images.uid), "--network=host", *pod_container(container, volumes)]
    with images.podman.start(images.pman, *options, args=tuple(pod_arguments(container))) as ctr:
        url = f"http://127.0.0.1:{port}"
        ctr.wait_until(lambda: _answers(f"{url}/readyz"), timeout=120, what="/readyz answer 200")
        token = find(objects, "Secret", "pman-api-token")["stringData"]["token"]
        yield url, token, ctr


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=5).status_code == 200
    except requests.RequestException:
        return False


def test_the_probes_answer_200_against_the_cluster(deployed):
    url, _, _ = deployed
    for path in ("/healthz", "/readyz"):
        assert requests.get(f"{url}{path}", timeout=10).status_code == 200


def test_the_api_needs_the_templates_token_and_reaches_the_cluster(deployed, kube_cluster):
    url, token, container = deployed
    assert requests.get(f"{url}/api/v1/", timeout=10).status_code == 401
    headers = {"Authorization": f"Bearer {token}"}
    info = requests.get(f"{url}/api/v1/", headers=headers, timeout=10)
    assert info.status_code == 200, info.text
    assert info.json()["container_env"] == "openshift"
    jobs = requests.get(f"{url}/api/v1/_jobs/", headers=headers, timeout=30)
    assert jobs.status_code == 200, jobs.text + container.logs()
    assert isinstance(jobs.json()["jobs"], list)


def test_pman_writes_nothing_outside_tmp(deployed):
    _, _, container = deployed
    probe = "open('/opt/pman/written', 'w')"
    done = container.exec("python", "-c", probe)
    assert done.returncode != 0
    assert "Read-only file system" in done.stderr


def dead_cluster_kubeconfig(directory: Path) -> Path:
    """A kubeconfig naming an API server that is not there."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "gone", "cluster": {"server": "https://127.0.0.1:1"}}],
        "users": [{"name": "pman", "user": {"token": "unused"}}],
        "contexts": [{"name": "gone", "context": {"cluster": "gone", "user": "pman"}}],
        "current-context": "gone",
    }
    return secret_directory(directory, {"kubeconfig": yaml.safe_dump(config)})


def ask(container: Container, path: str) -> tuple[int, str]:
    """(status, body) of a GET on pman's default port, from inside the container."""
    port = _default_port(container)
    done = container.exec("python", "-c", ASK % port, path)
    assert done.returncode == 0, done.stderr
    status, body = json.loads(done.stdout)
    return status, body


def _default_port(container: Container) -> str:
    done = container.exec(
        "python", "-c", "from pman import gunicorn_conf; print(gunicorn_conf.bind)"
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().rpartition(":")[2]


def test_with_its_defaults_and_a_dead_cluster_the_healthcheck_passes_and_readyz_is_503(
    images, tmp_path
):
    kubeconfig = dead_cluster_kubeconfig(tmp_path / "kube")
    options = [
        *restricted(images.uid),
        "--network=none",
        f"--volume={kubeconfig}:/etc/pman:ro",
        "--env=KUBECONFIG=/etc/pman/kubeconfig",
    ]
    with images.podman.start(images.pman, *options) as container:
        checked = container.wait_until(
            lambda: container.healthcheck().returncode == 0, timeout=120, what="healthy check"
        )
        assert checked
        assert ask(container, "/healthz") == (200, "ok\n")
        status, body = ask(container, "/readyz")
        assert status == 503
        message = json.loads(body)["message"]
        # Only what is not ready: where pman looked goes to its log.
        assert message == "not ready: Kubernetes API unreachable", message


def test_with_no_kubernetes_configuration_gunicorn_exits_saying_why(images):
    done = images.podman.run(images.pman, *restricted(images.uid), "--network=none", timeout=120)
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert "pman: no usable Kubernetes configuration (KUBECONFIG is not set" in output
    assert "Traceback" not in output
    assert "Booting worker" not in output
