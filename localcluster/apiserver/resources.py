"""The resource types the local cluster serves, and the discovery documents describing them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]

_READ = ("get", "list", "watch")
_WRITE = ("create", "delete", "update", "patch")


def _meta_fields(obj: Obj) -> dict[str, str]:
    meta = obj.get("metadata", {})
    return {"metadata.name": meta.get("name", ""), "metadata.namespace": meta.get("namespace", "")}


def _pod_fields(obj: Obj) -> dict[str, str]:
    spec, status = obj.get("spec", {}), obj.get("status", {})
    fields = _meta_fields(obj)
    fields.update(
        {
            "spec.nodeName": spec.get("nodeName", ""),
            "spec.restartPolicy": spec.get("restartPolicy", ""),
            "spec.schedulerName": spec.get("schedulerName", ""),
            "spec.serviceAccountName": spec.get("serviceAccountName", ""),
            "spec.hostNetwork": str(bool(spec.get("hostNetwork"))).lower(),
            "status.phase": status.get("phase", ""),
            "status.podIP": status.get("podIP", ""),
            "status.nominatedNodeName": status.get("nominatedNodeName", ""),
        }
    )
    return fields


def _job_fields(obj: Obj) -> dict[str, str]:
    fields = _meta_fields(obj)
    fields["status.successful"] = str(obj.get("status", {}).get("succeeded", 0))
    return fields


def _secret_fields(obj: Obj) -> dict[str, str]:
    fields = _meta_fields(obj)
    fields["type"] = obj.get("type", "")
    return fields


def _event_fields(obj: Obj) -> dict[str, str]:
    fields = _meta_fields(obj)
    involved = obj.get("involvedObject", {})
    for key in ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath"):
        fields[f"involvedObject.{key}"] = involved.get(key, "")
    fields.update(
        {
            "reason": obj.get("reason", ""),
            "reportingComponent": obj.get("reportingComponent", ""),
            "source": obj.get("source", {}).get("component", ""),
            "type": obj.get("type", ""),
        }
    )
    return fields


def _namespace_fields(obj: Obj) -> dict[str, str]:
    fields = _meta_fields(obj)
    fields["status.phase"] = obj.get("status", {}).get("phase", "")
    return fields


@dataclass(frozen=True)
class ResourceType:
    """One REST resource: where it lives, what it is called, which verbs it accepts."""

    name: str
    singular: str
    kind: str
    group: str
    version: str
    namespaced: bool
    verbs: tuple[str, ...]
    fields: Callable[[Obj], dict[str, str]] = _meta_fields
    subresources: dict[str, tuple[str, ...]] = field(default_factory=dict)
    short_names: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        return self.kind + "List"

    def discovery(self) -> list[Obj]:
        main: Obj = {
            "name": self.name,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": list(self.verbs),
        }
        if self.short_names:
            main["shortNames"] = list(self.short_names)
        subs = [
            {
                "name": f"{self.name}/{sub}",
                "singularName": "",
                "namespaced": self.namespaced,
                "kind": self.kind,
                "verbs": list(verbs),
            }
            for sub, verbs in self.subresources.items()
        ]
        return [main, *subs]


PODS = ResourceType(
    "pods",
    "pod",
    "Pod",
    "",
    "v1",
    True,
    (*_READ, "delete", "deletecollection", "patch", "update"),
    _pod_fields,
    {"log": ("get",), "status": ("get", "patch", "update")},
    ("po",),
)
SECRETS = ResourceType(
    "secrets", "secret", "Secret", "", "v1", True, (*_READ, *_WRITE), _secret_fields
)
CONFIGMAPS = ResourceType(
    "configmaps", "configmap", "ConfigMap", "", "v1", True, (*_READ, *_WRITE), short_names=("cm",)
)
SERVICEACCOUNTS = ResourceType(
    "serviceaccounts",
    "serviceaccount",
    "ServiceAccount",
    "",
    "v1",
    True,
    (*_READ, *_WRITE),
    short_names=("sa",),
)
EVENTS = ResourceType(
    "events",
    "event",
    "Event",
    "",
    "v1",
    True,
    (*_READ, *_WRITE),
    _event_fields,
    short_names=("ev",),
)
NAMESPACES = ResourceType(
    "namespaces",
    "namespace",
    "Namespace",
    "",
    "v1",
    False,
    ("create", "get", "list", "watch"),
    _namespace_fields,
    short_names=("ns",),
)
JOBS = ResourceType(
    "jobs",
    "job",
    "Job",
    "batch",
    "v1",
    True,
    (*_READ, *_WRITE, "deletecollection"),
    _job_fields,
    {"status": ("get", "patch", "update")},
)

ALL = (PODS, SECRETS, CONFIGMAPS, SERVICEACCOUNTS, EVENTS, NAMESPACES, JOBS)
BY_PATH = {(r.group, r.version, r.name): r for r in ALL}


def group_versions() -> dict[str, list[str]]:
    versions: dict[str, list[str]] = {}
    for resource in ALL:
        if resource.group:
            versions.setdefault(resource.group, [])
            if resource.version not in versions[resource.group]:
                versions[resource.group].append(resource.version)
    return versions


def resource_list(group: str, version: str) -> Obj | None:
    chosen = [r for r in ALL if r.group == group and r.version == version]
    if not chosen:
        return None
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": [doc for r in chosen for doc in r.discovery()],
    }


def group_list() -> Obj:
    groups = []
    for group, versions in sorted(group_versions().items()):
        entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        groups.append({"name": group, "versions": entries, "preferredVersion": entries[0]})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}
