"""The OpenShift templates, processed as ``oc process`` would: with only the required
parameters (the defaults: Swift storage) and with every parameter set to something else
(which makes pman's storage ``kubernetes_pvc``), and with every parameter set but Swift
storage kept (``swift-all-set``); and what pman's container gets from them."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pman.settings import Settings
from tests.support.openshift import template

REPO_ROOT = Path(__file__).resolve().parents[3]
OPENSHIFT = REPO_ROOT / "openshift"
# What the operator stores in the Swift credentials Secret, for the tests that need a file.
EXAMPLE_CREDENTIALS = (OPENSHIFT / "swift-credentials.cfg.example").read_text()
TEMPLATES = sorted(path.name for path in OPENSHIFT.glob("*.yaml"))

# What an operator must give: nothing but the project.
REQUIRED: dict[str, dict[str, str]] = {
    "pman.yaml": {"NAMESPACE": "chris"},
    "pman-publisher.yaml": {"NAMESPACE": "chris"},
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
        "PFCON_USER": "chris-compute",
        "PFCON_PASSWORD": "a-password-the-operator-chose",
        "PFCON_SECRET_KEY": "a-signing-key-the-operator-chose-long-enough",
        "PFCON_BASE_PATH": "/chris/api/v1/",
        "SWIFT_CONTAINER_NAME": "cube-files",
        "PFCON_BOOKKEEPING_CONTAINER": "cube-files-pman",
        "SWIFT_SECRET_NAME": "moc-swift",
        "SWIFT_POD_CREDENTIALS": "tempurl",
        "PMAN_SERVICE_URL": "http://pman.radiology.svc:5010/",
        "JOB_DEADLINE_SECONDS": "3600",
        "JOB_GRACE_SECONDS": "120",
        "JOB_TTL_SECONDS": "172800",
        "JOB_LOGS_TAIL": "50",
        "JOB_LOGS_MAX_BYTES": "256Ki",
        "GUNICORN_WORKERS": "4",
        "CPU_REQUEST": "250m",
        "CPU_LIMIT": "2",
        "MEMORY_REQUEST": "300Mi",
        "MEMORY_LIMIT": "1Gi",
        "ROUTE_HOST": "pman.apps.example.org",
        "ROUTE_TIMEOUT": "45m",
        "PMAN_MAX_DATA_SIZE": "2Gi",
        "TMP_SIZE_LIMIT": "9Gi",
        "STORAGE_TYPE": "kubernetes_pvc",
        "VOLUME_NAME": "chris-storebase",
    },
    "pman-publisher.yaml": {"NAMESPACE": "radiology"},
    "pman-networkpolicy.yaml": {"NAMESPACE": "radiology", "CLIENT_NAMESPACE": "pfcon"},
}
# Every parameter set, with Swift storage still: what the Swift-only checks look at.
SWIFT_ALL_SET = {
    **ALL_SET,
    "pman.yaml": {**ALL_SET["pman.yaml"], "STORAGE_TYPE": "swift", "VOLUME_NAME": ""},
}

VARIANTS = {"defaults": REQUIRED, "all-set": ALL_SET, "swift-all-set": SWIFT_ALL_SET}
# The templates an operator applies for each storage mode (openshift/README.rst).
SWIFT_TEMPLATES = ("pman.yaml", "pman-publisher.yaml")
VOLUME_TEMPLATES = ("pman.yaml",)

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


def deployed_objects(variant: str = "defaults") -> list[Obj]:
    """Every object the operator applies for the variant's storage mode: pman.yaml's, plus
    the publisher's account with Swift storage."""
    swift = given("pman.yaml", variant)["STORAGE_TYPE"] == "swift"
    names = SWIFT_TEMPLATES if swift else VOLUME_TEMPLATES
    return [obj for name in names for obj in process(name, variant)]


def given(name: str, variant: str) -> dict[str, str]:
    """A template's parameters as processed: the defaults, then what the variant sets."""
    defaults = {p["name"]: p.get("value", "") for p in load(name)["parameters"]}
    return defaults | VARIANTS[variant][name]


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


def pman_settings(
    objects: list[Obj],
    *,
    extra: Mapping[str, str] | None = None,
    secrets: Mapping[str, Mapping[str, str]] | None = None,
) -> Settings:
    """The settings pman reads in its container: the Deployment's environment (plus
    ``extra``), with the Secret volumes it mounts made into files as the kubelet would.

    The operator's Swift Secret (named by ``SWIFT_SECRET_NAME``, as for the jobs) holds the
    example swift-credentials.cfg unless ``secrets`` says which Secrets exist (``{}``:
    none, which leaves an optional Secret volume empty); paths under a Secret's
    ``mountPath`` point at its files.
    """
    env = pman_env(objects) | dict(extra or {})
    if secrets is None:
        secrets = {env["SWIFT_SECRET_NAME"]: {"swift-credentials.cfg": EXAMPLE_CREDENTIALS}}
    with tempfile.TemporaryDirectory(prefix="pman-volumes-") as directory:
        for mount, files in _secret_mounts(objects, secrets, Path(directory)):
            env = {name: _remount(value, mount, files) for name, value in env.items()}
        return Settings.from_env(env)


def _secret_mounts(
    objects: list[Obj], secrets: Mapping[str, Mapping[str, str]], directory: Path
) -> list[tuple[str, Path]]:
    """(mountPath, directory holding its files) for each Secret volume pman mounts."""
    spec = find(objects, "Deployment", "pman")["spec"]["template"]["spec"]
    volumes = {volume["name"]: volume for volume in spec["volumes"]}
    mounts = []
    for mount in pman_container(objects).get("volumeMounts") or []:
        source = volumes[mount["name"]].get("secret")
        if source is None:
            continue
        if source["secretName"] not in secrets:
            assert source.get("optional"), f"Secret {source['secretName']} keeps pman waiting"
        data = secrets.get(source["secretName"], {})
        items = source.get("items") or [{"key": key, "path": key} for key in data]
        files = directory / mount["name"]
        files.mkdir()
        for item in items:
            if item["key"] in data:
                (files / item["path"]).write_text(data[item["key"]])
        mounts.append((mount["mountPath"], files))
    return mounts


def _remount(value: str, mount_path: str, files: Path) -> str:
    prefix = mount_path.rstrip("/") + "/"
    return f"{files}/{value[len(prefix) :]}" if value.startswith(prefix) else value
