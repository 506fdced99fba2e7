"""The Job of a pfcon job: the one-pod shape of every pman job, its stage-in following the
plan, its publish writing into CUBE's container with the manifest kept apart (how the
publisher reads these commands and the plans: tests/pman/test_publisher_contract.py)."""

from __future__ import annotations

import kubernetes_validate

from pman.jobspec import build_job, build_pfcon_job
from pman.models import JobRequest
from pman.pfconjobs import PfconJobRequest, manifest_name
from pman.settings import Settings

PLAN = "users_pman/runs/chris-jid-1/run-1/stage-in.json"
OUTPUT = "home/alice/feeds/feed_1/pl-simplefsapp_1/data"
MANIFEST = f"users_pman/{manifest_name(OUTPUT)}"
FORM = {
    "jid": "chris-jid-1",
    "entrypoint": ["python3", "/usr/local/bin/simplefsapp"],
    "args": ["--greeting", "hi from CUBE"],
    "auid": "alice",
    "number_of_workers": "1",
    "cpu_limit": "1000",
    "memory_limit": "200",
    "gpu_limit": "0",
    "image": "fnndsc/pl-simplefsapp",
    "type": "fs",
    "env": ["CHRIS_JID=chris-jid-1"],
    "input_dirs": ["root/data/squashEmptyDir"],
    "output_dir": OUTPUT,
}


def request(**changes) -> JobRequest:
    return PfconJobRequest.parse({**FORM, **changes}).job_request(container="users", plan=PLAN)


def pfcon_job(settings: Settings | None = None, **changes) -> dict:
    return build_pfcon_job(
        request(**changes), settings or Settings(), run="run-1", plan=PLAN, manifest=MANIFEST
    )


def containers(manifest: dict) -> dict[str, dict]:
    spec = manifest["spec"]["template"]["spec"]
    return {c["name"]: c for c in spec["initContainers"] + spec["containers"]}


def test_the_pod_is_a_pman_pod_whose_stage_in_follows_the_plan():
    manifest = pfcon_job()
    plain = build_job(request(), Settings(), run="run-1")
    pod, plain_pod = (m["spec"]["template"]["spec"] for m in (manifest, plain))
    # Everything but what the data moves with is the pman v6 job's.
    assert {k: v for k, v in pod.items() if k not in ("initContainers", "containers")} == {
        k: v for k, v in plain_pod.items() if k not in ("initContainers", "containers")
    }
    parts, plain_parts = containers(manifest), containers(plain)
    assert parts["processor"] == plain_parts["processor"]
    assert parts["processor"]["command"] == [
        "python3", "/usr/local/bin/simplefsapp", "--greeting", "hi from CUBE", "/share/outgoing"
    ]  # fmt: skip
    assert {k: v for k, v in parts["stage-in"].items() if k != "command"} == {
        k: v for k, v in plain_parts["stage-in"].items() if k != "command"
    }
    assert parts["stage-in"]["command"] == [
        "publisher",
        "download",
        "--credentials",
        "/etc/swift/swift-credentials.cfg",
        "--make-dir",
        "/share/outgoing",
        "--plan",
        f"swift://{PLAN}",
        "/share/incoming",
    ]
    assert parts["publish"]["command"] == [
        "publisher",
        "publish",
        "--wait-container",
        "processor",
        "--credentials",
        "/etc/swift/swift-credentials.cfg",
        "--run-id",
        "run-1",
        "--manifest-to",
        f"swift://{MANIFEST}",
        "--skip-chris-links",
        "/share/outgoing",
        f"swift://users/{OUTPUT}",
    ]


def test_the_job_says_it_is_the_pfcon_apis_and_where_its_plan_and_manifest_are():
    manifest = pfcon_job()
    for metadata in (manifest["metadata"], manifest["spec"]["template"]["metadata"]):
        assert metadata["labels"]["pman.chrisproject.org/front-end"] == "pfcon"
        assert metadata["labels"]["pman.chrisproject.org/run"] == "run-1"
        assert metadata["annotations"] == {
            "pman.chrisproject.org/auid": "alice",
            "pman.chrisproject.org/input-dir": PLAN,
            "pman.chrisproject.org/output-dir": f"users/{OUTPUT}",
            "pman.chrisproject.org/stage-in-plan": PLAN,
            "pman.chrisproject.org/manifest": MANIFEST,
        }
    assert (
        "pman.chrisproject.org/front-end"
        not in build_job(request(), Settings(), run="run-1")["metadata"]["labels"]
    )


def test_it_validates_strictly_with_every_setting_that_shapes_the_pod():
    settings = Settings(node_selector={"gpu": "yes"}, image_pull_secrets=("r",), shm_size_mib=64)
    manifest = pfcon_job(settings, type="ds", gpu_limit="2")
    assert kubernetes_validate.validate(manifest, "1.30", strict=True) == "1.30"
    pod = manifest["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"gpu": "yes"}
    assert pod["imagePullSecrets"] == [{"name": "r"}]
    assert containers(manifest)["processor"]["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert containers(manifest)["processor"]["command"][-2:] == [
        "/share/incoming",
        "/share/outgoing",
    ]
