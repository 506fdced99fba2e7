"""The pod specs of pman's Deployment and of the Jobs pman builds pass OpenShift's
restricted-v2 constraints, and the check refuses each kind of violation with a message."""

from __future__ import annotations

import copy

import pytest

from pman.jobspec import build_job, pick_user
from pman.models import parse_job_request
from pman.settings import Settings
from tests.support.bodies import pfcon_request
from tests.support.openshift.restricted import violations
from tests.support.openshift.templates import find, pman_settings, process


def deployment_pod(variant: str = "defaults") -> dict:
    return find(process("pman.yaml", variant), "Deployment", "pman")["spec"]["template"]["spec"]


def job_pod(settings: Settings, **request) -> dict:
    """The pod spec of the Job pman submits for pfcon's request (as ``Jobs.submit`` does)."""
    uid, gid = pick_user(settings.container_user)
    job = build_job(
        parse_job_request(pfcon_request(**request)), settings, run="run-1", uid=uid, gid=gid
    )
    return job["spec"]["template"]["spec"]


def template_settings(variant: str = "defaults") -> Settings:
    return pman_settings(process("pman.yaml", variant))


@pytest.mark.parametrize("variant", ["defaults", "all-set"])
def test_the_deployment_passes(variant):
    assert violations(deployment_pod(variant)) == []


@pytest.mark.parametrize("kind", ["fs", "ds", "ts"])
@pytest.mark.parametrize("variant", ["defaults", "all-set"])
def test_the_jobs_pman_builds_with_the_template_configuration_pass(variant, kind):
    assert violations(job_pod(template_settings(variant), type=kind)) == []


def test_jobs_with_shared_memory_home_workaround_and_gpus_pass():
    settings = template_settings().replace(shm_size_mib=512, enable_home_workaround=True)
    assert violations(job_pod(settings, gpu_limit=1)) == []


def test_a_fixed_container_user_passes_only_inside_the_namespace_range():
    settings = pman_settings(process("pman.yaml"), extra={"CONTAINER_USER": "1000650000:"})
    spec = job_pod(settings)
    assert violations(spec, uid_range=(1000650000, 1000659999)) == []
    assert violations(spec) == [
        "pod: runAsUser 1000650000 is fixed; restricted-v2 assigns the namespace's range"
    ]


def test_a_root_container_user_is_refused():
    settings = pman_settings(process("pman.yaml"), extra={"CONTAINER_USER": "0:0"})
    found = violations(job_pod(settings), uid_range=(0, 10))
    assert "pod: runAsUser 0 runs as root" in found


def broken(change) -> list[str]:
    spec = copy.deepcopy(deployment_pod())
    change(spec)
    return violations(spec)


def container(spec: dict) -> dict:
    return spec["containers"][0]


def context(spec: dict) -> dict:
    return container(spec)["securityContext"]


VIOLATIONS = {
    "root": (
        lambda s: s["securityContext"].update(runAsUser=0),
        "pod: runAsUser 0 runs as root",
    ),
    "root-container": (
        lambda s: context(s).update(runAsUser=0),
        "container pman: runAsUser 0 runs as root",
    ),
    "fixed-uid": (
        lambda s: s["securityContext"].update(runAsUser=1001),
        "pod: runAsUser 1001 is fixed; restricted-v2 assigns the namespace's range",
    ),
    "fixed-fsgroup": (
        lambda s: s["securityContext"].update(fsGroup=1001),
        "pod: fsGroup 1001 is fixed; restricted-v2 assigns the namespace's range",
    ),
    "root-allowed": (
        lambda s: s["securityContext"].update(runAsNonRoot=False),
        "pod: runAsNonRoot must not be false",
    ),
    "escalation-unset": (
        lambda s: context(s).pop("allowPrivilegeEscalation"),
        "container pman: allowPrivilegeEscalation must be false",
    ),
    "escalation": (
        lambda s: context(s).update(allowPrivilegeEscalation=True),
        "container pman: allowPrivilegeEscalation must be false",
    ),
    "privileged": (
        lambda s: context(s).update(privileged=True),
        "container pman: privileged is not allowed",
    ),
    "capabilities-kept": (
        lambda s: context(s).update(capabilities={"drop": ["NET_RAW"]}),
        "container pman: capabilities must drop ALL",
    ),
    "capability-added": (
        lambda s: context(s)["capabilities"].update(add=["SYS_ADMIN", "NET_BIND_SERVICE"]),
        "container pman: capability SYS_ADMIN may not be added",
    ),
    "seccomp-unset": (
        lambda s: s["securityContext"].pop("seccompProfile"),
        "container pman: seccompProfile must be RuntimeDefault (on the pod or the container)",
    ),
    "seccomp-unconfined": (
        lambda s: context(s).update(seccompProfile={"type": "Unconfined"}),
        "container pman: seccompProfile must be RuntimeDefault (on the pod or the container)",
    ),
    "selinux": (
        lambda s: s["securityContext"].update(seLinuxOptions={"type": "spc_t"}),
        "pod: SELinux type spc_t is not allowed",
    ),
    "host-path": (
        lambda s: s["volumes"].append({"name": "docker", "hostPath": {"path": "/var/run"}}),
        "volume docker: hostPath volumes are not allowed",
    ),
    "host-network": (
        lambda s: s.update(hostNetwork=True),
        "pod: hostNetwork is not allowed",
    ),
    "host-pid": (lambda s: s.update(hostPID=True), "pod: hostPID is not allowed"),
    "host-port": (
        lambda s: container(s)["ports"][0].update(hostPort=5010),
        "container pman: hostPort 5010 is not allowed",
    ),
}


@pytest.mark.parametrize("name", VIOLATIONS)
def test_each_kind_of_violation_is_refused_with_a_message(name):
    change, message = VIOLATIONS[name]
    assert broken(change) == [message]


def test_init_containers_are_checked_too():
    spec = job_pod(template_settings())
    spec["initContainers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
    assert violations(spec) == ["container stage-in: allowPrivilegeEscalation must be false"]
