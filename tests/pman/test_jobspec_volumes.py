"""The pods of the volume storage modes (STORAGE_TYPE=kubernetes_pvc, host), compared with
the manifest an operator would write by hand: the processor alone on two subPaths of the
storeBase, after a check that the input exists; no Swift, no token, no publisher."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
from kubernetes.client import ApiClient, V1Job

from pman.jobspec import build_job
from pman.models import parse_job_request
from pman.settings import Settings
from tests.support.bodies import pfcon_request

SECURITY = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
PVC = Settings(storage_type="kubernetes_pvc", volume_name="storebase-claim")
HOST = Settings(storage_type="host", storebase=Path("/var/local/storeBase"))

PROCESSOR = {
    "name": "processor",
    "image": "fnndsc/pl-simpledsapp",
    "command": ["python3", "/usr/local/bin/simpledsapp", "/share/incoming", "/share/outgoing"],
    "env": [],
    "securityContext": SECURITY,
    "volumeMounts": [
        {
            "name": "storebase",
            "mountPath": "/share/incoming",
            "subPath": "key-chris-jid-42/incoming",
            "readOnly": True,
        },
        {
            "name": "storebase",
            "mountPath": "/share/outgoing",
            "subPath": "key-chris-jid-42/outgoing",
        },
    ],
    "resources": {"limits": {"cpu": "1000m", "memory": "200Mi"}},
}
CHECK_INPUT = {
    "name": "check-input",
    "image": "pman-publisher:6.0.0",
    "command": ["test", "-d", "/storebase/key-chris-jid-42/incoming"],
    "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
    "securityContext": SECURITY,
    "volumeMounts": [{"name": "storebase", "mountPath": "/storebase", "readOnly": True}],
}
DS_POD = {
    "restartPolicy": "Never",
    "terminationGracePeriodSeconds": 30,
    "automountServiceAccountToken": False,
    "enableServiceLinks": False,
    "securityContext": {
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
        "fsGroupChangePolicy": "OnRootMismatch",
    },
    "initContainers": [CHECK_INPUT],
    "containers": [PROCESSOR],
    "volumes": [{"name": "storebase", "persistentVolumeClaim": {"claimName": "storebase-claim"}}],
}


def ds_request(**changes):
    body = pfcon_request(
        type="ds",
        image="fnndsc/pl-simpledsapp",
        entrypoint=["python3", "/usr/local/bin/simpledsapp"],
        args=[],
        args_path_flags=[],
        env=[],
        **changes,
    )
    return parse_job_request(body, volume_storage=True)


def pod_of(request, settings, **options):
    return build_job(request, settings, run="run-1", **options)["spec"]["template"]["spec"]


def test_a_ds_job_on_a_claim_is_the_processor_on_two_subpaths_after_the_input_check():
    assert pod_of(ds_request(), PVC) == DS_POD


def test_on_a_host_directory_the_volume_is_that_directory_which_must_exist():
    pod = pod_of(ds_request(), HOST)
    assert pod["volumes"] == [
        {"name": "storebase", "hostPath": {"path": "/var/local/storeBase", "type": "Directory"}}
    ]
    assert pod["containers"] == DS_POD["containers"]
    assert pod["initContainers"] == DS_POD["initContainers"]


@pytest.mark.parametrize("settings", [PVC, HOST], ids=["kubernetes_pvc", "host"])
def test_no_swift_no_token_no_publisher_in_the_pod(settings):
    pod = pod_of(ds_request(), settings)
    names = [c["name"] for c in pod.get("initContainers", []) + pod["containers"]]
    assert names == ["check-input", "processor"]
    assert [volume["name"] for volume in pod["volumes"]] == ["storebase"]
    assert "serviceAccountName" not in pod  # no token: the namespace's default account
    assert pod["automountServiceAccountToken"] is False
    text = repr(pod)
    for swift_part in ("swift-credentials", "kube-api-access", "publisher publish", "swift://"):
        assert swift_part not in text


def test_an_fs_job_may_lack_its_input_so_nothing_checks_it():
    fs = parse_job_request(pfcon_request(), volume_storage=True)
    pod = pod_of(fs, PVC)
    assert "initContainers" not in pod
    (processor,) = pod["containers"]
    assert [
        (m["mountPath"], m["subPath"], m.get("readOnly", False)) for m in processor["volumeMounts"]
    ] == [
        ("/share/incoming", "key-chris-jid-42/incoming", True),
        ("/share/outgoing", "key-chris-jid-42/outgoing", False),
    ]


def test_the_paths_of_pfcons_in_network_modes_are_subpaths_as_given():
    request = ds_request(
        input_dir="/home/cube/uploads/", output_dir="home/cube/feed_1/pl-ds_2/data"
    )
    pod = pod_of(request, PVC)
    assert [m["subPath"] for m in pod["containers"][0]["volumeMounts"]] == [
        "home/cube/uploads",
        "home/cube/feed_1/pl-ds_2/data",
    ]
    assert pod["initContainers"][0]["command"][-1] == "/storebase/home/cube/uploads"


def test_a_dollar_in_the_input_path_survives_kubernetes_variable_expansion():
    pod = pod_of(ds_request(input_dir="in/$(HOME)/a$b"), PVC)
    assert pod["initContainers"][0]["command"][-1] == "/storebase/in/$$(HOME)/a$$b"


def test_a_fixed_group_changes_the_shared_volume_only_when_its_top_does_not_match():
    pod = pod_of(ds_request(), PVC, uid=1001, gid=0)
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
        "runAsUser": 1001,
        "runAsGroup": 0,
        "fsGroup": 0,
        "fsGroupChangePolicy": "OnRootMismatch",
    }


@pytest.mark.parametrize("settings", [PVC, HOST], ids=["kubernetes_pvc", "host"])
def test_without_a_container_user_the_cluster_s_fs_group_changes_only_a_mismatched_top(
    settings,
):
    # OpenShift's restricted policy gives the pod an fsGroup from the namespace's range.
    pod = pod_of(ds_request(), settings)
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
        "fsGroupChangePolicy": "OnRootMismatch",
    }
    job = build_job(ds_request(), settings, run="run-1")
    assert kubernetes_validate.validate(job, "1.30", strict=True) == "1.30"


def test_shm_and_the_rest_of_the_settings_apply_as_with_swift():
    settings = PVC.replace(shm_size_mib=64, node_selector={"disk": "ssd"}, ignore_limits=True)
    pod = pod_of(ds_request(), settings)
    assert pod["volumes"][1] == {
        "name": "dshm",
        "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"},
    }
    assert pod["containers"][0]["volumeMounts"][-1] == {"name": "dshm", "mountPath": "/dev/shm"}
    assert pod["nodeSelector"] == {"disk": "ssd"}
    assert "resources" not in pod["containers"][0]


@pytest.mark.parametrize("settings", [PVC, HOST], ids=["kubernetes_pvc", "host"])
def test_the_job_validates_against_kubernetes_and_the_client_models(settings):
    job = build_job(ds_request(), settings, run="run-1", uid=1001, gid=0)
    assert kubernetes_validate.validate(job, "1.30", strict=True) == "1.30"
    assert ApiClient().sanitize_for_serialization(V1Job.model_validate(job)) == job
