"""Who a container runs as and what it may do, who owns its volumes, and what isolation
this node gives (said at start by ``localcluster serve`` and ``localcluster up``).

Identity, as a kubelet and container runtime set it:

- ``runAsUser`` and ``runAsGroup`` from the container's ``securityContext``, else the pod's;
- ``runAsNonRoot`` without a UID: an arbitrary non-root UID in group 0, as OpenShift assigns
  one from the namespace's range: ``1000000000 + 10000 * k``, ``k`` from the namespace's
  name, the same for every pod of the namespace; ``runAsNonRoot`` with UID 0 does not start
  (``CreateContainerConfigError``, with the kubelet's message);
- supplementary groups: ``supplementalGroups`` and ``fsGroup`` (for the arbitrary UID,
  the same number when the pod names no ``fsGroup``, as OpenShift's restricted policy sets).

Capabilities: a container runtime's default set less ``MKNOD`` and ``NET_RAW`` (this node has
no device cgroup, and containers share its network, where a raw socket would read other
pods' traffic on loopback), then the container's ``capabilities.drop`` (``ALL`` too) and
``add``; ``privileged`` keeps them all. They bound a root container's powers and what a
setuid program can gain; a non-root container has none.

Volumes, when the local cluster runs as root (only root may give files away): with an
``fsGroup``, ``emptyDir``, ``secret``, ``configMap``, ``downwardAPI``, ``projected`` and
``persistentVolumeClaim`` volumes belong to that group as the kubelet's ``SetVolumeOwnership``
makes them: files get ``mode | 0440`` (read-only volume types) or ``| 0660`` (emptyDir, claims),
directories also the setgid bit and ``| 0110``; a projected service account token belongs to
the pod's UID when all its containers run as one. A claim is changed as a volume whose driver
supports ``fsGroup`` is: the whole tree at each pod's start, or with ``fsGroupChangePolicy:
OnRootMismatch`` only when its top directory does not already have that group, the setgid bit
and group read, write and search; a claim ``readOnly`` on the volume is not changed, nor is a
``hostPath``, which stays as its owner made it.
"""

from __future__ import annotations

import os
import stat
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localcluster.node import mounts
from localcluster.node.runtime import ConfigError
from localcluster.node.volumes import VolumeNotReady, token_paths

Obj = dict[str, Any]

ARBITRARY_BASE, ARBITRARY_BLOCK, ARBITRARY_BLOCKS = 1_000_000_000, 10_000, 100_000

# fmt: off
_CAPABILITY_NAMES = (  # in the kernel's order: the index is the capability's number
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID",
    "SETUID", "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN",
    "NET_RAW", "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE",
    "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME",
    "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
    "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ",
    "PERFMON", "BPF", "CHECKPOINT_RESTORE",
)
# containerd's and CRI-O's default set, less MKNOD and NET_RAW (see the module's docstring).
DEFAULT_CAPABILITIES = (
    "CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "SETGID", "SETUID", "SETFCAP", "SETPCAP",
    "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE",
)
# fmt: on
CAPABILITIES = {name: number for number, name in enumerate(_CAPABILITY_NAMES)}
_READ_ONLY_KINDS = ("secret", "configMap", "downwardAPI", "projected")
_OWNED_KINDS = ("emptyDir", "persistentVolumeClaim", *_READ_ONLY_KINDS)


def arbitrary_uid(namespace: str) -> int:
    """The UID of containers that ask for ``runAsNonRoot`` without naming one."""
    block = zlib.crc32(namespace.encode()) % ARBITRARY_BLOCKS
    return ARBITRARY_BASE + ARBITRARY_BLOCK * block


@dataclass(frozen=True)
class Identity:
    """What a container process runs as."""

    uid: int | None  # None: as the local cluster runs
    gid: int | None
    groups: list[int] = field(default_factory=list)
    capabilities: list[int] | None = None  # the bounding set; None: every capability


def _all_containers(pod: Obj) -> list[Obj]:
    spec = pod.get("spec") or {}
    return [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]


def _user(pod: Obj, container: Obj) -> tuple[int | None, bool]:
    """The UID asked for (None: none), and whether it is the arbitrary one."""
    pod_context = (pod.get("spec") or {}).get("securityContext") or {}
    context = container.get("securityContext") or {}
    uid = context.get("runAsUser", pod_context.get("runAsUser"))
    non_root = context.get("runAsNonRoot", pod_context.get("runAsNonRoot"))
    if uid is None and non_root:
        return arbitrary_uid(pod["metadata"]["namespace"]), True
    if uid == 0 and non_root:
        meta = pod["metadata"]
        where = f"{meta['name']}_{meta['namespace']}({meta.get('uid', '')})"
        raise ConfigError(
            f"container's runAsUser breaks non-root policy "
            f'(pod: "{where}", container: {container.get("name", "")})'
        )
    return uid, False


def fs_group(pod: Obj) -> int | None:
    """The pod's ``fsGroup``; for pods given the arbitrary UID, that number if none is named."""
    named = ((pod.get("spec") or {}).get("securityContext") or {}).get("fsGroup")
    if named is not None:
        return named
    for container in _all_containers(pod):
        try:
            if _user(pod, container)[1]:
                return arbitrary_uid(pod["metadata"]["namespace"])
        except ConfigError:
            continue
    return None


def capabilities(container: Obj) -> list[int] | None:
    """The container's bounding set of capabilities (None: all of them)."""
    context = container.get("securityContext") or {}
    if context.get("privileged"):
        return None
    asked = context.get("capabilities") or {}
    drop, add = (_names(asked.get(key) or []) for key in ("drop", "add"))
    if "ALL" in add:
        return None
    kept = set() if "ALL" in drop else set(DEFAULT_CAPABILITIES)
    kept = (kept - drop) | add
    return sorted(CAPABILITIES[name] for name in kept)


def _names(values: Iterable[Any]) -> set[str]:
    names = set()
    for value in values:
        name = str(value).upper().removeprefix("CAP_")
        if name != "ALL" and name not in CAPABILITIES:
            raise ConfigError(f'unknown capability "{value}"')
        names.add(name)
    return names


def container_identity(pod: Obj, container: Obj, *, switch: bool) -> Identity:
    """UID, GID, groups and capabilities of ``container``; raises ConfigError.

    ``switch``: whether this node can run containers as another user (it runs as root, or
    in user namespaces); if not, they run as the local cluster does, whatever they ask."""
    uid, arbitrary = _user(pod, container)
    caps = capabilities(container)
    if not switch:
        return Identity(None, None, [], caps)
    pod_context = (pod.get("spec") or {}).get("securityContext") or {}
    context = container.get("securityContext") or {}
    gid = context.get("runAsGroup", pod_context.get("runAsGroup"))
    if gid is None and arbitrary:
        gid = 0
    groups = [int(g) for g in pod_context.get("supplementalGroups") or []]
    group = fs_group(pod)
    if group is not None and group not in groups:
        groups.append(group)
    return Identity(uid, gid, groups, caps)


# -- volume ownership -----------------------------------------------------------------


def _pod_user(pod: Obj) -> int | None:
    """The UID every container of the pod runs as, if they all run as one."""
    users = set()
    for container in _all_containers(pod):
        try:
            users.add(_user(pod, container)[0])
        except ConfigError:
            return None
    return users.pop() if len(users) == 1 else None


def own_volumes(pod: Obj, volumes: dict[str, Path]) -> None:
    """Give the pod's volumes to its fsGroup (and its token to its UID), as a kubelet does;
    raises VolumeNotReady (a FailedMount) when a tree cannot be changed.

    Only root may give files away: elsewhere the volumes stay the local cluster's user's,
    which in user namespaces is the containers' own."""
    if os.geteuid() != 0:
        return
    group, user = fs_group(pod), _pod_user(pod)
    if group is None and user is None:
        return
    context = (pod.get("spec") or {}).get("securityContext") or {}
    on_root_mismatch = context.get("fsGroupChangePolicy") == "OnRootMismatch"
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        path = volumes.get(volume["name"])
        kind = next((k for k in _OWNED_KINDS if k in volume), None)
        if path is None or kind is None or group is None:
            continue
        read_only = kind in _READ_ONLY_KINDS
        if kind == "persistentVolumeClaim":
            if (volume[kind] or {}).get("readOnly"):
                continue  # as the kubelet: a read-only volume keeps its owners
            if on_root_mismatch and not _needs_change(path, group):
                continue
        try:
            _own_tree(path, group, read_only=read_only)
        except OSError as exc:  # a claim on a read-only file system, say
            raise VolumeNotReady(
                f'MountVolume.SetUp failed for volume "{volume["name"]}" : applying fsGroup '
                f"{group}: {exc.strerror}: {os.path.normpath(exc.filename or path)}"
            ) from None
    if user is not None:
        for token, _ in token_paths(pod, volumes):
            os.chown(token, user, -1)


def _needs_change(top: Path, group: int) -> bool:
    """``OnRootMismatch``: whether the top of a volume lacks the group, the setgid bit or
    group read, write and search (the kubelet's ``requiresPermissionChange``)."""
    try:
        info = os.stat(top)
    except OSError:
        return True
    wanted = 0o660 | 0o110
    return (
        info.st_gid != group or info.st_mode & wanted != wanted or not info.st_mode & stat.S_ISGID
    )


def _own_tree(top: Path, group: int, *, read_only: bool) -> None:
    """The group and modes of every file and directory under ``top``; symbolic links get the
    group and are never followed.

    Containers may be changing the tree meanwhile (other pods of a claim): it is walked
    through directory descriptors and each entry opened without following a link, so that a
    file swapped for a link to a file of this machine is left alone, not given away."""
    mask = 0o440 if read_only else 0o660
    for directory, directories, files, directory_fd in os.fwalk(top):
        for name in [".", *files, *directories]:
            try:
                if name == ".":
                    _own_open(directory_fd, group, mask)
                else:
                    _own_entry(name, directory_fd, group, mask)
            except OSError as exc:
                raise OSError(exc.errno, exc.strerror, os.path.join(directory, name)) from None


def _own_entry(name: str, directory_fd: int, group: int, mask: int) -> None:
    try:
        info = os.stat(name, dir_fd=directory_fd, follow_symlinks=False)
        if stat.S_ISDIR(info.st_mode):
            return  # walked into (and owned) as a directory
        if not stat.S_ISREG(info.st_mode):
            os.chown(name, -1, group, dir_fd=directory_fd, follow_symlinks=False)
            return
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
        fd = os.open(name, flags, dir_fd=directory_fd)
    except OSError:
        return  # gone, or made a link, since it was listed
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            _own_open(fd, group, mask)
    finally:
        os.close(fd)


def _own_open(fd: int, group: int, mask: int) -> None:
    info = os.fstat(fd)
    os.fchown(fd, -1, group)
    extra = mask | (stat.S_ISGID | 0o110 if stat.S_ISDIR(info.st_mode) else 0)
    # The mode from before the chown, which clears a file's setuid and setgid bits.
    os.fchmod(fd, stat.S_IMODE(info.st_mode) | extra)


def rewrite_file(path: Path, data: bytes) -> None:
    """Replace a volume's file (a rotated token) atomically, keeping its mode and owner."""
    info = path.stat()
    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        os.fchmod(handle.fileno(), stat.S_IMODE(info.st_mode))
        if os.geteuid() == 0:
            os.fchown(handle.fileno(), info.st_uid, info.st_gid)
    os.replace(temporary, path)


# -- what this node gives -------------------------------------------------------------


@dataclass(frozen=True)
class Isolation:
    """The isolation containers get on this node, as found at start."""

    mount_mode: str
    pid_namespace: bool
    user: str  # who the local cluster runs as
    root: bool
    hidden: tuple[str, ...]

    @property
    def switches_users(self) -> bool:
        """Whether containers run as the UID their pod asks for."""
        return self.root or self.mount_mode == mounts.USERNS

    def summary(self, namespace: str = "default") -> str:
        """One paragraph for people: what containers run as, see and may write."""
        arbitrary = (
            f"runAsNonRoot without a UID: an arbitrary one per namespace, in group 0; "
            f"UID {arbitrary_uid(namespace)} in namespace {namespace}"
        )
        hidden = ", ".join(self.hidden) or "nothing"
        processes = (
            "and PID namespaces (they see only their own processes)"
            if self.pid_namespace
            else "namespace, but no PID namespace on this machine: they see every process"
        )
        if self.mount_mode == mounts.REWRITE:
            if not self.root:
                return (
                    f"none: this machine allows no mount namespace (the local cluster runs "
                    f"as {self.user}, not root, and user namespaces are not available), so "
                    f"containers run as {self.user} whatever their pod asks, see every file "
                    "that user can read, the state directory, kubeconfig and credentials "
                    "included, and every process, and readOnly mounts are writable"
                )
            return (
                f"containers run as their pod's runAsUser, runAsGroup and groups ({arbitrary}), "
                "with at most a container runtime's default capabilities, but without mount "
                f"namespaces (mount mode {self.mount_mode}): they see the whole file system, "
                "the state directory and kubeconfig included, and readOnly mounts are writable"
            )
        if self.mount_mode == mounts.ROOT:
            who = (
                "containers run as their pod's runAsUser, runAsGroup, fsGroup and "
                f"supplementalGroups ({arbitrary}), with at most a container runtime's "
                "default capabilities"
            )
        else:
            who = (
                "containers run in an unprivileged user namespace as their pod's runAsUser "
                f"and runAsGroup ({arbitrary}), which for the kernel is {self.user}: they keep "
                "that user's rights on the files they see, and fsGroup and supplementalGroups "
                "are not applied (a user namespace may not set groups)"
            )
        return (
            f"{who}; they are in their own mount {processes}; hidden from them: {hidden}; "
            "readOnly mounts are read-only"
        )
