"""Who a container runs as, its capabilities, its volumes' owner, and what the node says of
its isolation: the rules of ``localcluster.node.security``, without a cluster."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from localcluster.node import _wrapper
from localcluster.node.runtime import ConfigError
from localcluster.node.security import (
    CAPABILITIES,
    Isolation,
    arbitrary_uid,
    capabilities,
    container_identity,
    own_volumes,
    rewrite_file,
)
from localcluster.node.volumes import VolumeNotReady
from tests.support.isolation import shared_directory


def pod(security: dict | None = None, *containers: dict, volumes: list | None = None) -> dict:
    spec: dict = {"containers": list(containers) or [{"name": "main"}]}
    if security is not None:
        spec["securityContext"] = security
    if volumes is not None:
        spec["volumes"] = volumes
    return {"metadata": {"name": "p", "namespace": "team-a", "uid": "u-1"}, "spec": spec}


def test_the_arbitrary_uid_is_one_per_namespace_in_openshifts_ranges():
    first, second = arbitrary_uid("team-a"), arbitrary_uid("team-b")
    assert first == arbitrary_uid("team-a")
    assert first != second
    for uid in (first, second):
        assert 1_000_000_000 <= uid < 2**31 - 1
        assert uid % 10_000 == 0


def test_container_settings_win_over_the_pod_s():
    spec = pod(
        {"runAsUser": 2000, "runAsGroup": 3000, "fsGroup": 4000, "supplementalGroups": [5000]}
    )
    main = {"name": "main", "securityContext": {"runAsUser": 2001}}
    identity = container_identity(spec, main, switch=True)
    assert (identity.uid, identity.gid, identity.groups) == (2001, 3000, [5000, 4000])


def test_run_as_non_root_without_a_uid_gets_the_namespace_s_in_group_0():
    spec = pod({"runAsNonRoot": True})
    identity = container_identity(spec, {"name": "main"}, switch=True)
    uid = arbitrary_uid("team-a")
    assert (identity.uid, identity.gid, identity.groups) == (uid, 0, [uid])
    # A named fsGroup stays the pod's.
    named = container_identity(pod({"runAsNonRoot": True, "fsGroup": 7}), {}, switch=True)
    assert named.groups == [7]


def test_run_as_non_root_with_uid_0_is_a_configuration_error():
    with pytest.raises(ConfigError) as raised:
        container_identity(pod({"runAsNonRoot": True, "runAsUser": 0}), {"name": "m"}, switch=True)
    assert str(raised.value) == (
        'container\'s runAsUser breaks non-root policy (pod: "p_team-a(u-1)", container: m)'
    )


def test_a_node_that_cannot_switch_users_runs_containers_as_itself():
    identity = container_identity(pod({"runAsUser": 2000}), {"name": "main"}, switch=False)
    assert (identity.uid, identity.gid, identity.groups) == (None, None, [])


def _names(numbers: list[int] | None) -> set[str] | None:
    if numbers is None:
        return None
    names = {number: name for name, number in CAPABILITIES.items()}
    return {names[n] for n in numbers}


def test_capabilities_are_a_runtime_s_default_set_less_mknod_and_net_raw():
    default = _names(capabilities({}))
    assert default is not None
    assert {"CHOWN", "DAC_OVERRIDE", "SETUID", "KILL", "NET_BIND_SERVICE"} <= default
    assert not {"SYS_ADMIN", "SYS_PTRACE", "NET_RAW", "MKNOD", "DAC_READ_SEARCH"} & default


@pytest.mark.parametrize(
    ("asked", "expected"),
    [
        ({"drop": ["ALL"]}, set()),
        ({"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}, {"NET_BIND_SERVICE"}),
        ({"drop": ["CAP_KILL", "chown"]}, "default-less"),
        ({"add": ["ALL"]}, None),
    ],
)
def test_capabilities_drop_and_add(asked, expected):
    found = _names(capabilities({"securityContext": {"capabilities": asked}}))
    if expected == "default-less":
        default = _names(capabilities({}))
        assert default is not None
        assert found == default - {"KILL", "CHOWN"}
    else:
        assert found == expected


def test_privileged_keeps_every_capability_and_unknown_ones_are_refused():
    assert capabilities({"securityContext": {"privileged": True}}) is None
    with pytest.raises(ConfigError, match='unknown capability "CAP_FLY"'):
        capabilities({"securityContext": {"capabilities": {"add": ["CAP_FLY"]}}})


@pytest.mark.skipif(os.geteuid() != 0, reason="giving files to a group needs root")
def test_volumes_belong_to_the_fs_group_as_a_kubelet_makes_them(tmp_path):
    secret, empty, host = tmp_path / "secret", tmp_path / "share", tmp_path / "host"
    for directory in (secret, empty, host):
        directory.mkdir()
    (secret / "key").write_text("x")
    (secret / "key").chmod(0o400)
    empty.chmod(0o777)
    (host / "file").write_text("y")
    volumes = [
        {"name": "secret", "secret": {"secretName": "s"}},
        {"name": "share", "emptyDir": {}},
        {"name": "host", "hostPath": {"path": str(host)}},
    ]
    own_volumes(
        pod({"fsGroup": 4000}, volumes=volumes),
        {"secret": secret, "share": empty, "host": host},
    )
    key = (secret / "key").stat()
    assert (key.st_gid, stat.S_IMODE(key.st_mode)) == (4000, 0o440)
    directory = secret.stat()
    assert (directory.st_gid, stat.S_IMODE(directory.st_mode)) == (4000, 0o2755)
    share = empty.stat()
    assert (share.st_gid, stat.S_IMODE(share.st_mode)) == (4000, 0o2777)
    assert (host / "file").stat().st_gid == 0  # a hostPath is the host's, as on a node


def _mode(path: Path) -> tuple[int, int]:
    info = path.lstat()
    return info.st_gid, stat.S_IMODE(info.st_mode)


def _claim_tree(top: Path) -> None:
    """A claim's tree as a client running as root leaves it: 0755 directories, 0644 files."""
    (top / "key-1" / "outgoing").mkdir(parents=True)
    (top / "key-1" / "in.txt").write_text("input")
    for directory in (top, top / "key-1", top / "key-1" / "outgoing"):
        directory.chmod(0o755)
    (top / "key-1" / "in.txt").chmod(0o644)


CLAIM = [{"name": "data", "persistentVolumeClaim": {"claimName": "storebase"}}]


@pytest.mark.skipif(os.geteuid() != 0, reason="giving files to a group needs root")
def test_a_claim_s_tree_belongs_to_the_fs_group_as_a_kubelet_makes_it(tmp_path):
    _claim_tree(tmp_path)
    own_volumes(pod({"fsGroup": 4000}, volumes=CLAIM), {"data": tmp_path})
    for directory in (tmp_path, tmp_path / "key-1", tmp_path / "key-1" / "outgoing"):
        assert _mode(directory) == (4000, 0o2775)
    assert _mode(tmp_path / "key-1" / "in.txt") == (4000, 0o664)
    # A directory made in it afterwards takes the group, as under setgid on a node.
    (tmp_path / "key-2").mkdir()
    assert (tmp_path / "key-2").stat().st_gid == 4000


@pytest.mark.skipif(os.geteuid() != 0, reason="giving files to a group needs root")
def test_without_an_fs_group_a_claim_goes_to_the_arbitrary_uid_s_group(tmp_path):
    # OpenShift's restricted policy gives such a pod an fsGroup from the namespace's range.
    arbitrary, named = tmp_path / "arbitrary", tmp_path / "named"
    for top in (arbitrary, named):
        _claim_tree(top)
    own_volumes(pod({"runAsNonRoot": True}, volumes=CLAIM), {"data": arbitrary})
    assert _mode(arbitrary / "key-1" / "outgoing") == (arbitrary_uid("team-a"), 0o2775)
    # A pod naming a UID and no fsGroup leaves the claim alone, as Kubernetes does.
    own_volumes(pod({"runAsUser": 2000}, volumes=CLAIM), {"data": named})
    assert _mode(named / "key-1" / "outgoing") == (0, 0o755)


@pytest.mark.skipif(os.geteuid() != 0, reason="giving files to a group needs root")
def test_on_root_mismatch_changes_a_claim_only_when_its_top_does_not_match(tmp_path):
    policy = {"fsGroup": 4000, "fsGroupChangePolicy": "OnRootMismatch"}
    _claim_tree(tmp_path)
    own_volumes(pod(policy, volumes=CLAIM), {"data": tmp_path})
    assert _mode(tmp_path / "key-1" / "outgoing") == (4000, 0o2775)
    # The top matches: what the client made since is left as it is.
    (tmp_path / "key-2").mkdir()
    os.chown(tmp_path / "key-2", -1, 0)
    (tmp_path / "key-2").chmod(0o755)
    own_volumes(pod(policy, volumes=CLAIM), {"data": tmp_path})
    assert _mode(tmp_path / "key-2") == (0, 0o755)
    # Without the policy (Always), and with a top that does not match, the whole tree.
    own_volumes(pod({"fsGroup": 4000}, volumes=CLAIM), {"data": tmp_path})
    assert _mode(tmp_path / "key-2") == (4000, 0o2775)
    (tmp_path / "key-3").mkdir()
    (tmp_path / "key-3").chmod(0o755)
    tmp_path.chmod(0o755)  # setgid and group write gone: a mismatch
    own_volumes(pod(policy, volumes=CLAIM), {"data": tmp_path})
    assert _mode(tmp_path / "key-3") == (4000, 0o2775)
    own_volumes(pod({**policy, "fsGroup": 5000}, volumes=CLAIM), {"data": tmp_path})
    assert _mode(tmp_path / "key-1" / "in.txt") == (5000, 0o664)


@pytest.mark.skipif(os.geteuid() != 0, reason="giving files to a group needs root")
def test_a_read_only_claim_and_what_links_point_to_keep_their_owners(tmp_path):
    outside, claim = tmp_path / "outside", tmp_path / "claim"
    outside.mkdir(mode=0o700)
    (outside / "secret").write_text("not the pod's")
    (outside / "secret").chmod(0o600)
    _claim_tree(claim)
    (claim / "key-1" / "to-file").symlink_to(outside / "secret")
    (claim / "key-1" / "to-dir").symlink_to(outside)
    read_only = [{"name": "data", "persistentVolumeClaim": {"claimName": "s", "readOnly": True}}]
    own_volumes(pod({"fsGroup": 4000}, volumes=read_only), {"data": claim})
    assert _mode(claim / "key-1") == (0, 0o755)
    own_volumes(pod({"fsGroup": 4000}, volumes=CLAIM), {"data": claim})
    assert _mode(claim / "key-1") == (4000, 0o2775)
    # The links themselves take the group; what they point to is not the pod's.
    assert (claim / "key-1" / "to-file").lstat().st_gid == 4000
    assert (claim / "key-1" / "to-dir").lstat().st_gid == 4000
    assert _mode(outside) == (0, 0o700)
    assert _mode(outside / "secret") == (0, 0o600)


@pytest.mark.skipif(os.geteuid() != 0, reason="giving files to a group needs root")
def test_a_claim_that_cannot_be_changed_keeps_the_pod_waiting_with_the_reason(tmp_path):
    _claim_tree(tmp_path)
    stuck = tmp_path / "key-1" / "in.txt"
    if subprocess.run(["chattr", "+i", str(stuck)], capture_output=True).returncode != 0:
        pytest.skip("no chattr here, or a file system without immutable files")
    try:
        with pytest.raises(VolumeNotReady) as caught:
            own_volumes(pod({"fsGroup": 4000}, volumes=CLAIM), {"data": tmp_path})
    finally:
        subprocess.run(["chattr", "-i", str(stuck)], check=True)
    assert str(caught.value) == (
        'MountVolume.SetUp failed for volume "data" : applying fsGroup 4000: '
        f"Operation not permitted: {stuck}"
    )


def test_a_rewritten_token_keeps_its_mode_and_owner(tmp_path):
    token = tmp_path / "token"
    token.write_text("old")
    token.chmod(0o440)
    if os.geteuid() == 0:
        os.chown(token, 2000, 4000)
    before = token.stat()
    rewrite_file(token, b"new")
    after = token.stat()
    assert token.read_text() == "new"
    assert (after.st_mode, after.st_uid, after.st_gid) == (
        before.st_mode,
        before.st_uid,
        before.st_gid,
    )


def test_directories_a_uid_may_not_enter_on_the_way_to_the_image():
    with shared_directory() as top:  # any UID enters it (pytest's own directory: root only)
        closed = top / "home"
        image = closed / "python" / "prefix"
        image.mkdir(parents=True)
        closed.chmod(0o700)
        (closed / "python").chmod(0o700)
        spec = {"mode": "root", "uid": 12345, "gid": 0, "groups": []}
        # The topmost only: what is below it is made anew in the cover.
        assert _wrapper.closed_ancestors([str(image)], spec) == [str(closed)]
        assert _wrapper.closed_ancestors([str(image)], {**spec, "groups": [os.getgid()]}) == [
            str(closed)
        ]
        # Root enters everything; in a user namespace the container keeps the local
        # cluster's user's rights.
        assert _wrapper.closed_ancestors([str(image)], {**spec, "uid": 0}) == []
        assert _wrapper.closed_ancestors([str(image)], {**spec, "mode": "userns"}) == []


@pytest.mark.parametrize(
    ("mode", "root", "said"),
    [
        ("root", True, ["fsGroup and", "PID namespaces", "hidden from them: /s", "read-only"]),
        ("userns", False, ["for the kernel is me", "are not applied", "hidden from them: /s"]),
        ("rewrite", False, ["none:", "as me whatever their pod asks", "readOnly mounts are writ"]),
        ("rewrite", True, ["without mount namespaces", "readOnly mounts are writable"]),
    ],
)
def test_the_summary_says_what_the_node_gives(mode, root, said):
    summary = Isolation(mode, mode != "rewrite", "me", root, ("/s",)).summary()
    for words in said:
        assert words in summary


def test_the_summary_says_when_there_is_no_pid_namespace():
    summary = Isolation("root", False, "root", True, ("/s", "/k")).summary()
    assert "no PID namespace on this machine: they see every process" in summary
    assert "hidden from them: /s, /k" in summary


def test_the_wrapper_s_capability_numbers_reach_the_kernel_s_last():
    last = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    assert max(CAPABILITIES.values()) <= last
