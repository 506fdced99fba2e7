"""A pod's volumes made real as directories under the pod's directory on the host.

``emptyDir`` is an empty directory (mode 0777, as the kubelet makes it), ``secret`` and
``configMap`` are directories of their keys, ``downwardAPI`` and ``projected`` (service
account token, ``kube-root-ca.crt``, downward API items, secrets, config maps) are
directories of files, ``hostPath`` is the host directory itself, and a
``persistentVolumeClaim`` is the directory of its claim, ``<claims>/<namespace>/<claim>``
(created empty, mode 0777, on first use; a symbolic link there makes a claim any directory).
A missing Secret or ConfigMap, or a ``hostPath`` of type ``Directory`` that is not one,
keeps the pod waiting, as on a real node.

A mount's ``subPath`` is found as the kubelet finds it (:func:`subpath_source`): created
when missing, refused when it leads outside its volume.

Who may use them is the volume's owner's business, as on a node: a claim's tree is given to
the pod's ``fsGroup`` (``security.own_volumes``), a ``hostPath`` is left as it is.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from localcluster.apiserver.registry import Store

Obj = dict[str, Any]
TokenMaker = Callable[[int], str]  # expirationSeconds -> token

_DOWNWARD_KEY = re.compile(r"^metadata\.(labels|annotations)\['([^']+)'\]$")


class VolumeNotReady(Exception):
    """A volume cannot be set up yet; the message is the kubelet's FailedMount event."""


class SubPathError(Exception):
    """A mount's subPath cannot be used; the message is the kubelet's, which it reports as
    the container's ``CreateContainerConfigError``."""


def downward_value(pod: Obj, field_path: str) -> str:
    meta, spec, status = pod["metadata"], pod.get("spec", {}), pod.get("status", {})
    simple = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.hostIP": status.get("hostIP", "127.0.0.1"),
        "status.hostIPs": status.get("hostIP", "127.0.0.1"),
        "status.podIP": status.get("podIP", "127.0.0.1"),
        "status.podIPs": status.get("podIP", "127.0.0.1"),
    }
    if field_path in simple:
        return simple[field_path]
    if field_path in ("metadata.labels", "metadata.annotations"):
        values = meta.get(field_path.split(".")[1]) or {}
        return "\n".join(f'{k}="{v}"' for k, v in sorted(values.items()))
    match = _DOWNWARD_KEY.match(field_path)
    if match:
        return (meta.get(match.group(1)) or {}).get(match.group(2), "")
    raise ValueError(f"unsupported fieldPath {field_path!r}")


def write_file(path: Path, data: bytes, mode: int) -> None:
    """Replace a file atomically, so readers never see half a token."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(temporary, mode)
    os.replace(temporary, path)


class VolumeBuilder:
    """Sets up the volumes of one pod under ``base``."""

    def __init__(
        self, store: Store, pod: Obj, base: Path, *, token: TokenMaker, claims: Path
    ) -> None:
        self.store = store
        self.pod = pod
        self.base = base
        self.token = token
        self.claims = claims
        self.namespace = pod["metadata"]["namespace"]

    def build(self) -> dict[str, Path]:
        """Host directory of every volume; raises VolumeNotReady if one must wait."""
        paths = {}
        for volume in self.pod["spec"].get("volumes") or []:
            paths[volume["name"]] = self._volume(volume)
        return paths

    def _volume(self, volume: Obj) -> Path:
        name = volume["name"]
        target = self.base / name
        if "hostPath" in volume:
            path = Path(volume["hostPath"].get("path", ""))
            kind = volume["hostPath"].get("type")
            if kind == "DirectoryOrCreate":
                path.mkdir(parents=True, exist_ok=True)
            elif kind == "Directory" and not path.is_dir():
                raise VolumeNotReady(
                    f'MountVolume.SetUp failed for volume "{name}" : hostPath type check '
                    f"failed: {path} is not a directory"
                )
            return path
        if "persistentVolumeClaim" in volume:
            claim = (volume["persistentVolumeClaim"] or {}).get("claimName", "")
            return claim_directory(self.claims, self.namespace, claim)
        if "emptyDir" in volume:
            target.mkdir(parents=True, exist_ok=True)
            target.chmod(0o777)
            return target
        builders = {
            "secret": self._secret_volume,
            "configMap": self._configmap_volume,
            "downwardAPI": self._downward_volume,
            "projected": self._projected_volume,
        }
        for kind, builder in builders.items():
            if kind in volume:
                target.mkdir(parents=True, exist_ok=True, mode=0o755)
                builder(volume[kind] or {}, name, target)
                return target
        kind = next((k for k in volume if k != "name"), "unknown")
        raise VolumeNotReady(
            f'MountVolume.SetUp failed for volume "{name}" : {kind} volumes are not supported '
            "by the local cluster"
        )

    def _keys(self, resource: str, source: Obj, volume: str) -> dict[str, bytes] | None:
        key_field = "secretName" if resource == "secrets" else "name"
        object_name = source.get(key_field) or source.get("name", "")
        entry = self.store.get(resource, self.namespace, object_name)
        if entry is None:
            if source.get("optional"):
                return None
            kind = "secret" if resource == "secrets" else "configmap"
            raise VolumeNotReady(
                f'MountVolume.SetUp failed for volume "{volume}" : {kind} "{object_name}" not found'
            )
        obj = entry.obj
        if resource == "secrets":
            return {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
        data = {k: v.encode() for k, v in (obj.get("data") or {}).items()}
        data.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
        return data

    def _write_keys(self, data: dict[str, bytes], source: Obj, target: Path, mode: int) -> None:
        items = source.get("items")
        if not items:
            for key, value in data.items():
                write_file(target / key, value, mode)
            return
        for item in items:
            if item.get("key") in data:
                write_file(target / item["path"], data[item["key"]], item.get("mode", mode))
            elif not source.get("optional"):
                raise VolumeNotReady(f'references non-existent key "{item.get("key")}"')

    def _secret_volume(self, source: Obj, volume: str, target: Path) -> None:
        data = self._keys("secrets", source, volume)
        if data is not None:
            self._write_keys(data, source, target, source.get("defaultMode", 0o644))

    def _configmap_volume(self, source: Obj, volume: str, target: Path) -> None:
        data = self._keys("configmaps", source, volume)
        if data is not None:
            self._write_keys(data, source, target, source.get("defaultMode", 0o644))

    def _downward_volume(self, source: Obj, volume: str, target: Path) -> None:
        mode = source.get("defaultMode", 0o644)
        for item in source.get("items") or []:
            value = downward_value(self.pod, item.get("fieldRef", {}).get("fieldPath", ""))
            write_file(target / item["path"], value.encode(), item.get("mode", mode))

    def _projected_volume(self, source: Obj, volume: str, target: Path) -> None:
        mode = source.get("defaultMode", 0o644)
        for projection in source.get("sources") or []:
            if "serviceAccountToken" in projection:
                token_source = projection["serviceAccountToken"]
                token = self.token(int(token_source.get("expirationSeconds") or 3600))
                write_file(target / token_source.get("path", "token"), token.encode(), mode)
            elif "configMap" in projection:
                data = self._keys("configmaps", projection["configMap"], volume)
                if data is not None:
                    self._write_keys(data, projection["configMap"], target, mode)
            elif "secret" in projection:
                data = self._keys("secrets", projection["secret"], volume)
                if data is not None:
                    self._write_keys(data, projection["secret"], target, mode)
            elif "downwardAPI" in projection:
                self._downward_volume(
                    {"defaultMode": mode, **projection["downwardAPI"]}, volume, target
                )


def claim_directory(claims: Path, namespace: str, claim: str) -> Path:
    """The directory a claim stands for: ``<claims>/<namespace>/<claim>``, made on first use
    (mode 0777, as many provisioners make a new volume's top; a pod's ``fsGroup`` then gets
    the tree, see ``security.own_volumes``)."""
    path = claims / namespace / claim
    if not path.exists():
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(0o777)
    return path.resolve()


def read_only_volumes(pod: Obj) -> set[str]:
    """Volumes every mount gets read-only: claims with ``readOnly`` on the volume itself."""
    return {
        volume["name"]
        for volume in pod["spec"].get("volumes") or []
        if (volume.get("persistentVolumeClaim") or {}).get("readOnly")
    }


def subpath_source(volume: Path, sub_path: str, *, mount: str, container: str) -> Path:
    """The host directory of ``sub_path`` in the volume at ``volume``, as the kubelet makes
    it: missing directories are created by root with the mode of the volume's top directory
    (in a setgid directory, such as a claim given to an ``fsGroup``, they take its group),
    and a path that resolves outside the volume, through a symbolic link, is refused.

    The kubelet makes the check and the mount one safe operation; here they are two steps,
    which a process changing the volume in between could race."""
    refused = SubPathError(
        f'failed to prepare subPath for volumeMount "{mount}" of container "{container}"'
    )
    parts = [part for part in sub_path.split("/") if part and part != "."]
    if ".." in parts or sub_path.startswith("/"):
        raise refused  # (the API server refuses these already)
    root = volume.resolve()
    target = root.joinpath(*parts)
    existing = target
    while not existing.exists() and existing != root:
        existing = existing.parent
    if not _within(existing.resolve(), root):
        raise refused
    try:
        mode = root.stat().st_mode & 0o7777
        for directory in reversed(
            [target, *target.parents][: len(target.parents) - len(existing.parents)]
        ):
            if not directory.exists():
                # Another pod of the job may be making it at the same moment.
                directory.mkdir(exist_ok=True)
                directory.chmod(mode)
    except OSError:
        raise SubPathError(
            f'failed to create subPath directory for volumeMount "{mount}" of container '
            f'"{container}"'
        ) from None
    if not _within(target.resolve(), root):
        raise refused
    return target.resolve()


def _within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def token_paths(pod: Obj, volumes: dict[str, Path]) -> list[tuple[Path, int]]:
    """Files holding projected service account tokens, with their expirationSeconds."""
    found = []
    for volume in pod["spec"].get("volumes") or []:
        for projection in (volume.get("projected") or {}).get("sources") or []:
            token = projection.get("serviceAccountToken")
            if token is not None and volume["name"] in volumes:
                path = volumes[volume["name"]] / token.get("path", "token")
                found.append((path, int(token.get("expirationSeconds") or 3600)))
    return found
