"""The OpenShift templates, processed as ``oc process`` would: with only the required
parameters (the defaults) and with every parameter set to something else."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.openshift import template

REPO_ROOT = Path(__file__).resolve().parents[2]
OPENSHIFT = REPO_ROOT / "openshift"
TEMPLATES = sorted(path.name for path in OPENSHIFT.glob("*.yaml"))

# What an operator must give: nothing but the project.
REQUIRED: dict[str, dict[str, str]] = {
    "pman.yaml": {"NAMESPACE": "chris"},
    "pman-networkpolicy.yaml": {"NAMESPACE": "chris"},
}

# Every parameter, each set to something other than its default.
ALL_SET: dict[str, dict[str, str]] = {
    "pman.yaml": {
        "NAMESPACE": "radiology",
        "PMAN_IMAGE": "registry.example.org/chris/pman:6.0.1",
        "PUBLISHER_IMAGE": "registry.example.org/chris/pman-publisher:6.0.1",
        "REPLICAS": "3",
        "PMAN_API_TOKEN": "a-token-the-operator-chose",
        "SWIFT_SECRET_NAME": "moc-swift",
        "JOB_DEADLINE_SECONDS": "3600",
        "JOB_TTL_SECONDS": "172800",
        "JOB_LOGS_TAIL": "50",
        "GUNICORN_WORKERS": "4",
        "CPU_REQUEST": "250m",
        "CPU_LIMIT": "2",
        "MEMORY_REQUEST": "300Mi",
        "MEMORY_LIMIT": "1Gi",
        "ROUTE_HOST": "pman.apps.example.org",
    },
    "pman-networkpolicy.yaml": {"NAMESPACE": "radiology", "CLIENT_NAMESPACE": "pfcon"},
}

VARIANTS = {"defaults": REQUIRED, "all-set": ALL_SET}

Obj = dict[str, Any]


def load(name: str) -> Obj:
    return template.load(OPENSHIFT / name)


def process(name: str, variant: str = "defaults") -> list[Obj]:
    """The objects of one template processed with one set of parameters."""
    return template.process(load(name), VARIANTS[variant][name])["items"]


def find(objects: list[Obj], kind: str, name: str) -> Obj:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name}, found {len(matches)}"
    return matches[0]


def pman_objects(variant: str = "defaults") -> list[Obj]:
    return process("pman.yaml", variant)


@pytest.fixture(params=[(t, v) for t in TEMPLATES for v in VARIANTS], ids=lambda p: "-".join(p))
def processed(request: pytest.FixtureRequest) -> tuple[str, str, list[Obj]]:
    """(template, variant, objects) for every template and both sets of parameters."""
    name, variant = request.param
    return name, variant, process(name, variant)


def pman_container(objects: list[Obj]) -> Obj:
    """The pman container of the Deployment."""
    (container,) = find(objects, "Deployment", "pman")["spec"]["template"]["spec"]["containers"]
    return container


def container_env(objects: list[Obj], container: Obj) -> dict[str, str]:
    """A container's environment as the kubelet would set it, Secrets looked up in
    ``objects`` and ``metadata.namespace`` from the object's namespace."""
    env = {}
    for item in container.get("env") or []:
        if "value" in item:
            env[item["name"]] = item["value"]
            continue
        source = item["valueFrom"]
        if "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            env[item["name"]] = find(objects, "Secret", ref["name"])["stringData"][ref["key"]]
        else:
            assert source["fieldRef"]["fieldPath"] == "metadata.namespace", item
            env[item["name"]] = find(objects, "Deployment", "pman")["metadata"]["namespace"]
    return env


def pman_env(objects: list[Obj]) -> dict[str, str]:
    """The environment pman's container gets from the processed template."""
    return container_env(objects, pman_container(objects))
