"""The built images are what the OpenShift template and pman's job pods expect of them.

The Dockerfiles are the one place the images' user, command and port are written; these
tests read them from the built images (their configuration, and pman's own default bind
asked inside the image) and compare them with the processed template and with the Job pman
builds, so that a change on either side that the other does not follow fails here.
"""

from __future__ import annotations

import pytest

from pman.jobspec import build_job
from pman.models import parse_job_request
from pman.settings import Settings
from tests.support.openshift.templates import find, pman_container, pman_objects
from tests.support.podman import restricted

pytestmark = pytest.mark.images

REQUEST = {
    "jid": "image-contract",
    "image": "python:3.11-slim",
    "entrypoint": ["python3", "-c", "pass"],
    "args": [],
    "auid": "tester",
    "number_of_workers": 1,
    "cpu_limit": 1000,
    "memory_limit": 200,
    "gpu_limit": 0,
    "type": "ds",
    "input_dir": "key-image-contract/incoming",
    "output_dir": "key-image-contract/outgoing",
}


def config(images, image: str) -> dict:
    return images.podman.inspect(image)["Config"]


def default_argv(image_config: dict) -> list[str]:
    return [*(image_config.get("Entrypoint") or []), *(image_config.get("Cmd") or [])]


def container_argv(container: dict, image_config: dict) -> list[str]:
    """What Kubernetes runs for a container of this image: ``command`` replaces the image's
    entrypoint (and drops its arguments), ``args`` replaces the image's arguments."""
    if container.get("command"):
        return [*container["command"], *(container.get("args") or [])]
    args = container.get("args") or image_config.get("Cmd") or []
    return [*(image_config.get("Entrypoint") or []), *args]


def assert_runs_as_the_restricted_policy_expects(image_config: dict, pod_spec: dict) -> None:
    # runAsNonRoot without runAsUser: the kubelet accepts the image only with a numeric
    # non-root USER; OpenShift then replaces the UID and keeps group 0.
    context = pod_spec.get("securityContext") or {}
    assert context.get("runAsNonRoot") is True
    uid, _, gid = image_config["User"].partition(":")
    assert uid.isdigit(), image_config["User"]
    assert int(uid) != 0, image_config["User"]
    assert gid == "0", image_config["User"]


def test_the_pman_image_runs_what_the_template_runs(images):
    image = config(images, images.pman)
    container = pman_container(pman_objects())
    assert container_argv(container, image) == default_argv(image)


def test_the_pman_image_exposes_and_binds_the_templates_port(images):
    image = config(images, images.pman)
    objects = pman_objects()
    ports = {p["containerPort"] for p in pman_container(objects)["ports"]}
    assert {f"{port}/tcp" for port in ports} == set(image["ExposedPorts"])
    service = find(objects, "Service", "pman")
    named = {p["name"] for p in pman_container(objects)["ports"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= named
    bind = images.podman.run(
        images.pman,
        *restricted(images.uid),
        "--network=none",
        "--entrypoint=python",
        args=("-c", "from pman import gunicorn_conf; print(gunicorn_conf.bind)"),
    )
    assert bind.returncode == 0, bind.stderr
    assert int(bind.stdout.strip().rpartition(":")[2]) in ports


def test_the_pman_image_user_suits_the_templates_pod(images):
    spec = find(pman_objects(), "Deployment", "pman")["spec"]["template"]["spec"]
    assert_runs_as_the_restricted_policy_expects(config(images, images.pman), spec)
    assert pman_container(pman_objects())["securityContext"]["readOnlyRootFilesystem"] is True


def test_the_publisher_image_runs_the_commands_pman_writes_into_job_pods(images):
    image = config(images, images.publisher)
    settings = Settings(publisher_image=images.publisher)
    spec = build_job(parse_job_request(REQUEST), settings, run="run-1")["spec"]["template"]["spec"]
    ours = [
        c for c in spec["initContainers"] + spec["containers"] if c["image"] == images.publisher
    ]
    assert {c["name"] for c in ours} == {"stage-in", "publish"}
    for container in ours:
        # The program pman names is the image's own entrypoint.
        assert container_argv(container, image)[0] == default_argv(image)[0]
    assert_runs_as_the_restricted_policy_expects(image, spec)
