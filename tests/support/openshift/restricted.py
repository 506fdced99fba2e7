"""OpenShift's ``restricted-v2`` security context constraints, as a pure check of a pod spec.

``violations(spec)`` lists, in words, what would keep the pod from being admitted under
``restricted-v2`` (or from running the way pman intends under it):

- no fixed user: ``runAsUser`` and ``fsGroup`` are assigned from the namespace's range, so
  a spec may set them only within a known range, never to root, and must not turn
  ``runAsNonRoot`` off;
- every container: ``allowPrivilegeEscalation: false``, ``capabilities.drop`` holding
  ``ALL``, nothing added but ``NET_BIND_SERVICE``, not privileged, no custom SELinux type;
- the ``RuntimeDefault`` seccomp profile, on the pod or on each container;
- only the volume types the SCC allows (no ``hostPath``), no host network, PID or IPC,
  no host ports.
"""

from __future__ import annotations

from typing import Any

Spec = dict[str, Any]

ALLOWED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
ALLOWED_CAPABILITIES = {"NET_BIND_SERVICE"}


def violations(spec: Spec, *, uid_range: tuple[int, int] | None = None) -> list[str]:
    """Every way ``spec`` breaks restricted-v2; empty when it is admitted as it is.

    ``uid_range``: the namespace's UID range, within which fixed IDs are allowed.
    """
    found = _host_access(spec) + _volumes(spec) + _pod_identity(spec, uid_range)
    for container in _containers(spec):
        found += _container(container, spec, uid_range)
    return found


def _containers(spec: Spec) -> list[Spec]:
    return [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]


def _host_access(spec: Spec) -> list[str]:
    found = [
        f"pod: {field} is not allowed"
        for field in ("hostNetwork", "hostPID", "hostIPC")
        if spec.get(field)
    ]
    for container in _containers(spec):
        for port in container.get("ports") or []:
            if port.get("hostPort"):
                found.append(
                    f"container {container['name']}: hostPort {port['hostPort']} is not allowed"
                )
    return found


def _volumes(spec: Spec) -> list[str]:
    found = []
    for volume in spec.get("volumes") or []:
        kinds = set(volume) - {"name"}
        for kind in sorted(kinds - ALLOWED_VOLUMES):
            found.append(f"volume {volume['name']}: {kind} volumes are not allowed")
    return found


def _pod_identity(spec: Spec, uid_range: tuple[int, int] | None) -> list[str]:
    context = spec.get("securityContext") or {}
    found = _user(context, "pod", uid_range)
    group = context.get("fsGroup")
    if group is not None and not _within(group, uid_range):
        found.append(f"pod: fsGroup {group} is fixed; restricted-v2 assigns the namespace's range")
    return found


def _user(context: Spec, where: str, uid_range: tuple[int, int] | None) -> list[str]:
    found = []
    user = context.get("runAsUser")
    if user == 0:
        found.append(f"{where}: runAsUser 0 runs as root")
    elif user is not None and not _within(user, uid_range):
        found.append(
            f"{where}: runAsUser {user} is fixed; restricted-v2 assigns the namespace's range"
        )
    if context.get("runAsNonRoot") is False:
        found.append(f"{where}: runAsNonRoot must not be false")
    selinux_type = (context.get("seLinuxOptions") or {}).get("type")
    if selinux_type:
        found.append(f"{where}: SELinux type {selinux_type} is not allowed")
    return found


def _within(value: int, uid_range: tuple[int, int] | None) -> bool:
    return uid_range is not None and uid_range[0] <= value <= uid_range[1]


def _container(container: Spec, spec: Spec, uid_range: tuple[int, int] | None) -> list[str]:
    where = f"container {container['name']}"
    context = container.get("securityContext") or {}
    found = _user(context, where, uid_range)
    if context.get("allowPrivilegeEscalation") is not False:
        found.append(f"{where}: allowPrivilegeEscalation must be false")
    if context.get("privileged"):
        found.append(f"{where}: privileged is not allowed")
    capabilities = context.get("capabilities") or {}
    if "ALL" not in (capabilities.get("drop") or []):
        found.append(f"{where}: capabilities must drop ALL")
    for added in sorted(set(capabilities.get("add") or []) - ALLOWED_CAPABILITIES):
        found.append(f"{where}: capability {added} may not be added")
    if _seccomp(context, spec) != "RuntimeDefault":
        found.append(
            f"{where}: seccompProfile must be RuntimeDefault (on the pod or the container)"
        )
    return found


def _seccomp(context: Spec, spec: Spec) -> str | None:
    profile = context.get("seccompProfile") or (spec.get("securityContext") or {}).get(
        "seccompProfile"
    )
    return (profile or {}).get("type")
