"""The Job pman builds, compared with the manifest an operator would write by hand."""

from __future__ import annotations

import kubernetes_validate
import pytest
from kubernetes.client import ApiClient, V1Job

from pman.jobspec import build_job, pick_user
from pman.models import parse_job_request
from pman.service import job_object
from pman.settings import ContainerUser, Settings
from pman.status import job_state
from tests.support.bodies import pfcon_request

SECURITY = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
SIDECAR_RESOURCES = {"requests": {"cpu": "100m", "memory": "128Mi"}}
LABELS = {
    "app.kubernetes.io/managed-by": "pman",
    "pman.chrisproject.org/jid": "chris-jid-42",
    "pman.chrisproject.org/run": "run-1",
    "pman.chrisproject.org/auid": "cube",
}
ANNOTATIONS = {
    "pman.chrisproject.org/auid": "cube",
    "pman.chrisproject.org/input-dir": "key-chris-jid-42/incoming",
    "pman.chrisproject.org/output-dir": "key-chris-jid-42/outgoing",
}
SHARE = {"name": "share", "mountPath": "/share"}
CREDENTIALS = {"name": "swift-credentials", "mountPath": "/etc/swift", "readOnly": True}
TOKEN = {
    "name": "kube-api-access",
    "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
    "readOnly": True,
}

PFCON_JOB = {
    "apiVersion": "batch/v1",
    "kind": "Job",
    "metadata": {"name": "chris-jid-42", "labels": LABELS, "annotations": ANNOTATIONS},
    "spec": {
        "parallelism": 1,
        "completions": 1,
        "backoffLimit": 0,
        "activeDeadlineSeconds": 604800,
        "ttlSecondsAfterFinished": 86400,
        "template": {
            "metadata": {"labels": LABELS, "annotations": ANNOTATIONS},
            "spec": {
                "restartPolicy": "Never",
                "terminationGracePeriodSeconds": 30,
                "serviceAccountName": "pman-publisher",
                "automountServiceAccountToken": False,
                "enableServiceLinks": False,
                "securityContext": {
                    "runAsNonRoot": True,
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
                "initContainers": [
                    {
                        "name": "stage-in",
                        "image": "pman-publisher:6.0.0",
                        "command": [
                            "publisher",
                            "download",
                            "--credentials",
                            "/etc/swift/swift-credentials.cfg",
                            "--make-dir",
                            "/share/outgoing",
                            "--allow-empty",
                            "swift://key-chris-jid-42/incoming",
                            "/share/incoming",
                        ],
                        "resources": SIDECAR_RESOURCES,
                        "securityContext": SECURITY,
                        "terminationMessagePolicy": "FallbackToLogsOnError",
                        "volumeMounts": [SHARE, CREDENTIALS],
                    }
                ],
                "containers": [
                    {
                        "name": "processor",
                        "image": "fnndsc/pl-simplefsapp",
                        "command": [
                            "python3",
                            "/usr/local/bin/simplefsapp",
                            "--saveinputmeta",
                            "--saveoutputmeta",
                            "--dir",
                            "/share/incoming",
                            "/share/outgoing",
                        ],
                        "env": [{"name": "CHRIS_JID", "value": "chris-jid-42"}],
                        "securityContext": SECURITY,
                        "volumeMounts": [SHARE],
                        "resources": {"limits": {"cpu": "1000m", "memory": "200Mi"}},
                    },
                    {
                        "name": "publish",
                        "image": "pman-publisher:6.0.0",
                        "command": [
                            "publisher",
                            "publish",
                            "--wait-container",
                            "processor",
                            "--credentials",
                            "/etc/swift/swift-credentials.cfg",
                            "--run-id",
                            "run-1",
                            "/share/outgoing",
                            "swift://key-chris-jid-42/outgoing",
                        ],
                        "env": [
                            {
                                "name": "POD_NAME",
                                "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
                            },
                            {
                                "name": "POD_NAMESPACE",
                                "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
                            },
                        ],
                        "resources": SIDECAR_RESOURCES,
                        "securityContext": SECURITY,
                        "terminationMessagePolicy": "FallbackToLogsOnError",
                        "volumeMounts": [SHARE, CREDENTIALS, TOKEN],
                    },
                ],
                "volumes": [
                    {"name": "share", "emptyDir": {}},
                    {"name": "swift-credentials", "secret": {"secretName": "swift-credentials"}},
                    {
                        "name": "kube-api-access",
                        "projected": {
                            "sources": [
                                {
                                    "serviceAccountToken": {
                                        "path": "token",
                                        "expirationSeconds": 3600,
                                    }
                                },
                                {
                                    "configMap": {
                                        "name": "kube-root-ca.crt",
                                        "items": [{"key": "ca.crt", "path": "ca.crt"}],
                                    }
                                },
                                {
                                    "downwardAPI": {
                                        "items": [
                                            {
                                                "path": "namespace",
                                                "fieldRef": {"fieldPath": "metadata.namespace"},
                                            }
                                        ]
                                    }
                                },
                            ]
                        },
                    },
                ],
            },
        },
    },
}


def job(settings: Settings | None = None, **changes) -> dict:
    return build_job(
        parse_job_request(pfcon_request(**changes)), settings or Settings(), run="run-1"
    )


def pod(manifest: dict) -> dict:
    return manifest["spec"]["template"]["spec"]


def container(manifest: dict, name: str) -> dict:
    spec = pod(manifest)
    return next(c for c in spec["initContainers"] + spec["containers"] if c["name"] == name)


def test_pfcon_request_builds_the_expected_job():
    assert job() == PFCON_JOB


def test_ds_input_must_exist_and_the_command_ends_with_both_directories():
    manifest = job(type="ds")
    assert "--allow-empty" not in container(manifest, "stage-in")["command"]
    assert "--make-dir" in container(manifest, "stage-in")["command"]
    assert container(manifest, "processor")["command"][-2:] == [
        "/share/incoming",
        "/share/outgoing",
    ]


def test_every_setting_that_shapes_the_pod():
    settings = Settings(
        job_labels={"team": "radiology", "app.kubernetes.io/managed-by": "someone-else"},
        node_selector={"gpu": "yes"},
        image_pull_secrets=("registry-a", "registry-b"),
        shm_size_mib=512,
        enable_home_workaround=True,
        publisher_image="registry.example/publisher:1",
        swift_secret_name="my-swift",
        publisher_service_account="robot",
        job_deadline_seconds=3600,
        job_ttl_seconds=60,
        job_grace_seconds=120,
    )
    manifest = job(settings, gpu_limit="2", number_of_workers="3")
    spec = pod(manifest)
    assert manifest["metadata"]["labels"]["team"] == "radiology"
    assert manifest["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "pman"
    assert manifest["spec"]["parallelism"] == manifest["spec"]["completions"] == 3
    assert (
        manifest["spec"]["activeDeadlineSeconds"],
        manifest["spec"]["ttlSecondsAfterFinished"],
    ) == (3600, 60)
    assert spec["nodeSelector"] == {"gpu": "yes"}
    assert spec["imagePullSecrets"] == [{"name": "registry-a"}, {"name": "registry-b"}]
    assert spec["serviceAccountName"] == "robot"
    assert spec["terminationGracePeriodSeconds"] == 120
    assert {"name": "swift-credentials", "secret": {"secretName": "my-swift"}} in spec["volumes"]
    assert {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "512Mi"}} in spec[
        "volumes"
    ]
    processor = container(manifest, "processor")
    assert {"name": "dshm", "mountPath": "/dev/shm"} in processor["volumeMounts"]
    assert processor["resources"]["limits"] == {
        "cpu": "1000m",
        "memory": "200Mi",
        "nvidia.com/gpu": "2",
    }
    assert processor["env"][-1] == {"name": "HOME", "value": "/tmp"}
    assert container(manifest, "publish")["image"] == "registry.example/publisher:1"
    assert container(manifest, "stage-in")["image"] == "registry.example/publisher:1"


def test_ignore_limits_drops_the_processor_resources():
    assert "resources" not in container(job(Settings(ignore_limits=True)), "processor")


def test_container_user_sets_the_pod_ids():
    manifest = build_job(
        parse_job_request(pfcon_request()), Settings(), run="run-1", uid=1001, gid=0
    )
    assert pod(manifest)["securityContext"] == {
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
        "runAsUser": 1001,
        "runAsGroup": 0,
        "fsGroup": 0,
    }


def test_container_user_ranges_are_picked_from():
    user = ContainerUser(uid=(1000, 2000), gid=5)
    assert pick_user(user, choose=lambda low, high: high) == (2000, 5)
    assert pick_user(None) == (None, None)
    uid, gid = pick_user(user)
    assert 1000 <= uid <= 2000
    assert gid == 5


def test_dollars_are_escaped_so_kubernetes_expands_nothing_and_cmd_is_the_words_given():
    words = ["$(HOME)", "$$", "cost: 5$", "$(a$$b)"]
    manifest = job(
        entrypoint=["run", "$(PATH)"],
        args=words,
        env=["HOME=/x", "NOTE=$(HOME) $$"],
        input_dir="key-$(POD_NAME)/in",
        output_dir="key-$(POD_NAME)/out",
    )
    escaped = ["$$(HOME)", "$$$$", "cost: 5$$", "$$(a$$$$b)"]
    assert container(manifest, "processor")["command"] == [
        "run", "$$(PATH)", *escaped, "/share/outgoing",
    ]  # fmt: skip
    assert {"name": "NOTE", "value": "$$(HOME) $$$$"} in container(manifest, "processor")["env"]
    assert "swift://key-$$(POD_NAME)/in" in container(manifest, "stage-in")["command"]
    assert "swift://key-$$(POD_NAME)/out" in container(manifest, "publish")["command"]
    reported = job_object(manifest, job_state(manifest, []), logs="")
    assert reported["cmd"] == " ".join(["run", "$(PATH)", *words, "/share/outgoing"])


def test_an_auid_that_is_no_label_value_stays_an_annotation():
    manifest = job(auid="Jane Doe <jane@example.org>")
    assert "pman.chrisproject.org/auid" not in manifest["metadata"]["labels"]
    assert (
        manifest["metadata"]["annotations"]["pman.chrisproject.org/auid"]
        == "Jane Doe <jane@example.org>"
    )


def test_only_stage_in_and_publish_see_credentials_and_only_publish_a_token():
    manifest = job()
    containers = pod(manifest)["initContainers"] + pod(manifest)["containers"]
    mounts = {c["name"]: {m["name"] for m in c["volumeMounts"]} for c in containers}
    assert mounts == {
        "stage-in": {"share", "swift-credentials"},
        "processor": {"share"},
        "publish": {"share", "swift-credentials", "kube-api-access"},
    }


@pytest.mark.parametrize(
    "settings",
    [
        Settings(),
        Settings(
            shm_size_mib=64, node_selector={"a": "b"}, image_pull_secrets=("s",), ignore_limits=True
        ),
    ],
)
def test_built_jobs_pass_strict_schema_validation_for_kubernetes_1_30(settings):
    manifest = build_job(
        parse_job_request(pfcon_request(gpu_limit=1, type="ds")), settings, run="r", uid=1, gid=2
    )
    assert kubernetes_validate.validate(manifest, "1.30", strict=True) == "1.30"


def test_strict_validation_would_catch_a_misspelt_field():
    manifest = job()
    pod(manifest)["containers"][0]["volumeMount"] = []
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(manifest, "1.30", strict=True)


def test_the_kubernetes_client_reads_the_manifest_back_unchanged():
    manifest = job()
    assert ApiClient().sanitize_for_serialization(V1Job.model_validate(manifest)) == manifest
