"""The volumes a storeBase is shared through: persistentVolumeClaim volumes (a claim is a
directory of the cluster's state), hostPath directories, their subPaths as the kubelet finds
them, and readOnly mounts where this machine can enforce them."""

from __future__ import annotations

from pathlib import Path

import pytest
from kubernetes.client.exceptions import ApiException

from localcluster.node.security import arbitrary_uid
from localcluster.node.volumes import SubPathError, claim_directory, subpath_source
from tests.support.kube import (
    container,
    is_finished,
    job_manifest,
    state_of,
    status_body,
    wait_for_pod,
)
from tests.support.names import unique_name

NEEDS_MOUNTS = "readOnly needs mount namespaces; in rewrite mode it is not enforced"


def _run(jobs, core, namespace, manifest, *, timeout=60):
    jobs(manifest)
    return wait_for_pod(core, namespace, manifest["metadata"]["name"], is_finished, timeout=timeout)


def _log(core, namespace, pod, name="main"):
    return core.read_namespaced_pod_log(pod.metadata.name, namespace, container=name)


def _claim(name: str, **source) -> dict:
    return {"name": "data", "persistentVolumeClaim": {"claimName": name, **source}}


# -- subPaths, as the kubelet finds them (no cluster) -------------------------------------


def test_a_missing_subpath_is_made_with_the_mode_of_the_volume(tmp_path):
    volume = tmp_path / "volume"
    volume.mkdir()
    volume.chmod(0o777)
    found = subpath_source(volume, "key-1/outgoing", mount="data", container="main")
    assert found == volume.resolve() / "key-1" / "outgoing"
    assert found.is_dir()
    assert (found.stat().st_mode & 0o777, found.parent.stat().st_mode & 0o777) == (0o777, 0o777)


def test_a_subpath_through_a_link_inside_the_volume_is_followed(tmp_path):
    volume = tmp_path / "volume"
    (volume / "real" / "in").mkdir(parents=True)
    (volume / "alias").symlink_to("real")
    assert subpath_source(volume, "alias/in", mount="data", container="main") == (
        volume.resolve() / "real" / "in"
    )


@pytest.mark.parametrize("link", ["outside", "../outside", "dangling"])
def test_a_subpath_leading_out_of_the_volume_is_refused_and_nothing_is_made(tmp_path, link):
    volume, outside = tmp_path / "volume", tmp_path / "outside"
    (volume / "key-1").mkdir(parents=True)
    outside.mkdir()
    target = {"outside": str(outside), "../outside": "../../outside", "dangling": "/nowhere/x"}
    (volume / "key-1" / "incoming").symlink_to(target[link])
    with pytest.raises(SubPathError) as caught:
        subpath_source(volume, "key-1/incoming/sub", mount="data", container="main")
    message = str(caught.value)
    assert "subPath" in message
    assert '"data"' in message
    assert '"main"' in message
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize("sub_path", ["../x", "a/../../x", "/etc"])
def test_a_subpath_with_dot_dot_or_absolute_is_refused(tmp_path, sub_path):
    with pytest.raises(SubPathError):
        subpath_source(tmp_path, sub_path, mount="data", container="main")


def test_a_claim_is_a_directory_made_on_first_use_or_where_a_link_points(tmp_path):
    made = claim_directory(tmp_path, "ns", "storebase")
    assert made == (tmp_path / "ns" / "storebase").resolve()
    assert made.is_dir()
    assert made.stat().st_mode & 0o777 == 0o777
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "ns" / "linked").symlink_to(elsewhere)
    assert claim_directory(tmp_path, "ns", "linked") == elsewhere.resolve()


# -- pods on the local cluster ------------------------------------------------------------


def test_pods_mounting_a_claim_share_its_directory(jobs, core, namespace, local):
    claim = unique_name("claim")
    directory = local.claim_directory(namespace, claim)
    (directory / "from-host.txt").write_text("written by the client\n")
    writer = container(
        "main",
        "cat /data/from-host.txt; echo from the pod > /data/from-pod.txt",
        volumeMounts=[{"name": "data", "mountPath": "/data"}],
    )
    pod = _run(
        jobs, core, namespace, job_manifest(unique_name("claim"), [writer], volumes=[_claim(claim)])
    )
    assert _log(core, namespace, pod) == "written by the client\n"
    assert (directory / "from-pod.txt").read_text() == "from the pod\n"


def test_subpaths_of_a_claim_read_only_and_read_write(jobs, core, namespace, local):
    claim = unique_name("claim")
    directory = local.claim_directory(namespace, claim)
    (directory / "key-1" / "incoming").mkdir(parents=True)
    (directory / "key-1" / "incoming" / "in.txt").write_text("input\n")
    (directory / "other").mkdir()
    script = (
        "cat /share/incoming/in.txt; "
        "(echo x > /share/incoming/new.txt) 2>/dev/null && echo in-writable || echo in-read-only; "
        "cp /share/incoming/in.txt /share/outgoing/out.txt && echo out-written; ls -A /share"
    )
    main = container(
        "main",
        script,
        volumeMounts=[
            {
                "name": "data",
                "mountPath": "/share/incoming",
                "subPath": "key-1/incoming",
                "readOnly": True,
            },
            {"name": "data", "mountPath": "/share/outgoing", "subPath": "key-1/outgoing"},
        ],
    )
    pod = _run(
        jobs, core, namespace, job_manifest(unique_name("subpath"), [main], volumes=[_claim(claim)])
    )
    lines = _log(core, namespace, pod).split()
    assert lines[0] == "input"
    assert "out-written" in lines
    # The missing output directory was made, in the claim, as the kubelet makes it.
    assert (directory / "key-1" / "outgoing" / "out.txt").read_text() == "input\n"
    if local.mount_mode == "rewrite":
        pytest.skip(NEEDS_MOUNTS)
    assert "in-read-only" in lines
    assert not (directory / "key-1" / "incoming" / "new.txt").exists()
    # Only the two mount points: nothing else of the claim is under /share.
    assert lines[-2:] == ["incoming", "outgoing"]


@pytest.mark.parametrize(
    "security",
    [{"runAsNonRoot": True}, {"runAsUser": 2000, "runAsGroup": 3000, "fsGroup": 3000}],
    ids=["arbitrary-uid", "fixed-uid"],
)
def test_a_non_root_pod_writes_the_directories_a_root_client_made_in_a_claim(
    jobs, core, namespace, local, security
):
    # On a node the kubelet gives a claim's tree to the pod's fsGroup (the arbitrary UID's
    # own number when the pod names none, as OpenShift's restricted policy assigns it).
    if not local.isolation.root or local.mount_mode == "rewrite":
        pytest.skip("needs a local cluster running as root, with mount namespaces")
    claim = unique_name("claim")
    directory = local.claim_directory(namespace, claim)
    (directory / "key-1" / "incoming").mkdir(parents=True)
    (directory / "key-1" / "outgoing").mkdir()
    (directory / "key-1" / "incoming" / "in.txt").write_text("input\n")
    for made in (directory / "key-1", *(directory / "key-1").iterdir()):
        made.chmod(0o755)
    script = (
        "id -u; cp /share/incoming/in.txt /share/outgoing/out.txt && echo out-written; "
        "(echo x > /share/incoming/new.txt) 2>/dev/null && echo in-writable || echo in-read-only; "
        "echo y > /share/made/y.txt && echo made-written"
    )
    mounts = [
        {"name": "data", "mountPath": "/share/incoming", "subPath": "key-1/incoming"},
        {"name": "data", "mountPath": "/share/outgoing", "subPath": "key-1/outgoing"},
        {"name": "data", "mountPath": "/share/made", "subPath": "key-2/made"},
    ]
    mounts[0]["readOnly"] = True
    main = container("main", script, volumeMounts=mounts)
    manifest = job_manifest(
        unique_name("fsgroup"),
        [main],
        volumes=[_claim(claim)],
        pod_spec={"securityContext": {**security, "fsGroupChangePolicy": "OnRootMismatch"}},
    )
    pod = _run(jobs, core, namespace, manifest)
    lines = _log(core, namespace, pod).split()
    group = security.get("fsGroup", arbitrary_uid(namespace))
    assert lines == [
        str(security.get("runAsUser", group)),
        "out-written",
        "in-read-only",
        "made-written",
    ]
    assert (directory / "key-1" / "outgoing" / "out.txt").read_text() == "input\n"
    assert not (directory / "key-1" / "incoming" / "new.txt").exists()
    # The tree is the fsGroup's; the subPath the kubelet made took the group of the claim.
    for path in (directory, directory / "key-1" / "outgoing", directory / "key-2" / "made"):
        info = path.stat()
        assert (info.st_gid, info.st_mode & 0o2070) == (group, 0o2070), path


def test_a_claim_read_only_on_the_volume_is_read_only_in_every_mount(jobs, core, namespace, local):
    if local.mount_mode == "rewrite":
        pytest.skip(NEEDS_MOUNTS)
    claim = unique_name("claim")
    directory = local.claim_directory(namespace, claim)
    main = container(
        "main",
        "(echo x > /data/new.txt) 2>/dev/null && echo writable || echo read-only",
        volumeMounts=[{"name": "data", "mountPath": "/data"}],
    )
    manifest = job_manifest(unique_name("roclaim"), [main], volumes=[_claim(claim, readOnly=True)])
    pod = _run(jobs, core, namespace, manifest)
    assert _log(core, namespace, pod) == "read-only\n"
    assert list(directory.iterdir()) == []


def test_a_subpath_leading_out_of_its_volume_keeps_the_container_from_starting(
    jobs, core, namespace, local, tmp_path
):
    # What a real kubelet does: CreateContainerConfigError, retried, never started.
    claim = unique_name("claim")
    directory = local.claim_directory(namespace, claim)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("not the job's\n")
    (directory / "key-1").mkdir()
    (directory / "key-1" / "incoming").symlink_to(outside)
    main = container(
        "main",
        "cat /share/incoming/secret.txt",
        volumeMounts=[
            {"name": "data", "mountPath": "/share/incoming", "subPath": "key-1/incoming"}
        ],
    )
    name = unique_name("escape")
    jobs(job_manifest(name, [main], volumes=[_claim(claim)]))

    def config_error(pod) -> bool:
        statuses = pod.status.container_statuses or []
        return (
            bool(statuses)
            and statuses[0].state.waiting is not None
            and (statuses[0].state.waiting.reason == "CreateContainerConfigError")
        )

    pod = wait_for_pod(core, namespace, name, config_error)
    waiting = state_of(pod, "main").waiting
    assert waiting.message == 'failed to prepare subPath for volumeMount "data" of container "main"'
    assert pod.status.phase == "Pending"


def test_a_host_directory_of_type_directory_must_exist(jobs, core, namespace, local, tmp_path):
    missing = tmp_path / "not-made-yet"
    main = container("main", "ls /data", volumeMounts=[{"name": "data", "mountPath": "/data"}])
    volume = {"name": "data", "hostPath": {"path": str(missing), "type": "Directory"}}
    name = unique_name("hostdir")
    jobs(job_manifest(name, [main], volumes=[volume]))
    pod = wait_for_pod(
        core,
        namespace,
        name,
        lambda p: (
            bool(p.status.container_statuses)
            and p.status.container_statuses[0].state.waiting is not None
        ),
    )
    assert state_of(pod, "main").waiting.reason == "ContainerCreating"
    events = core.list_namespaced_event(
        namespace, field_selector=f"involvedObject.name={pod.metadata.name},reason=FailedMount"
    ).items
    assert events
    assert f"{missing} is not a directory" in events[0].message
    assert not missing.exists()
    missing.mkdir()
    finished = wait_for_pod(core, namespace, name, is_finished)
    assert state_of(finished, "main").terminated.exit_code == 0


def test_the_claims_live_under_the_state_directory(local, namespace):
    claim = unique_name("claim")
    assert (
        local.claim_directory(namespace, claim)
        == (Path(local.state_dir) / "volumes" / namespace / claim).resolve()
    )


def test_a_claim_volume_needs_a_claim_name(batch, namespace, local):
    main = container("main", "true", volumeMounts=[{"name": "data", "mountPath": "/data"}])
    manifest = job_manifest(
        unique_name("noclaim"),
        [main],
        volumes=[{"name": "data", "persistentVolumeClaim": {"claimName": ""}}],
    )
    with pytest.raises(ApiException) as caught:
        batch.create_namespaced_job(namespace, manifest)
    assert caught.value.status == 422
    causes = status_body(caught.value)["details"]["causes"]
    assert {cause["field"] for cause in causes} == {
        "spec.template.spec.volumes[0].persistentVolumeClaim.claimName"
    }
