"""What a request asks for: the Kubernetes request-info of an HTTP method and path.

Like the API server's RequestInfoFactory, it names the RBAC verb (``get``, ``list``,
``watch``, ``create``, ...), the API group, resource, subresource, namespace and name; a
list or watch with a ``metadata.name`` field selector carries that name, as it does for
RBAC ``resourceNames``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

from localcluster.apiserver import resources
from localcluster.apiserver.resources import ResourceType

_METHOD_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch"}


@dataclass
class RequestInfo:
    method: str
    path: str
    query: dict[str, str] = field(default_factory=dict)
    is_resource: bool = False
    verb: str = ""
    group: str = ""
    version: str = ""
    resource: ResourceType | None = None
    resource_name: str = ""  # as written in the path, even when unknown
    subresource: str = ""
    namespace: str = ""
    name: str = ""

    def object_ref(self) -> dict[str, str] | None:
        if not self.is_resource:
            return None
        ref = {"resource": self.resource_name, "apiVersion": self.version}
        if self.group:
            ref["apiGroup"] = self.group
        for key, value in (
            ("namespace", self.namespace),
            ("name", self.name),
            ("subresource", self.subresource),
        ):
            if value:
                ref[key] = value
        return ref

    def flag(self, key: str) -> bool:
        return self.query.get(key, "").lower() in ("true", "1")


def _verb(method: str, name: str, watch: bool) -> str:
    if method in ("GET", "HEAD"):
        if watch:
            return "watch"
        return "get" if name else "list"
    if method == "DELETE":
        return "delete" if name else "deletecollection"
    return _METHOD_VERBS.get(method, method.lower())


def _name_from_field_selector(selector: str) -> str:
    for term in selector.split(","):
        key, _, value = term.partition("=")
        if key.strip() == "metadata.name":
            return value.removeprefix("=")
    return ""


def parse(method: str, target: str) -> RequestInfo:
    split = urlsplit(target)
    query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
    path = split.path.rstrip("/") or "/"
    info = RequestInfo(method=method, path=path, query=query)
    parts = [unquote(p) for p in path.strip("/").split("/") if p]
    if parts[:2] == ["api", "v1"] and len(parts) > 2:
        group, version, rest = "", "v1", parts[2:]
    elif parts[:1] == ["apis"] and len(parts) > 3:
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        info.verb = "get" if method in ("GET", "HEAD") else method.lower()
        return info
    watch = info.flag("watch")
    if rest[0] == "watch":
        watch, rest = True, rest[1:]
    if len(rest) >= 3 and rest[0] == "namespaces":
        info.namespace, rest = rest[1], rest[2:]
    elif len(rest) >= 2 and rest[0] == "namespaces":
        # /api/v1/namespaces/<name>: the namespace object itself.
        info.namespace = rest[1]
    if not rest:
        return info
    info.is_resource = True
    info.group, info.version, info.resource_name = group, version, rest[0]
    info.resource = resources.BY_PATH.get((group, version, rest[0]))
    info.name = rest[1] if len(rest) > 1 else ""
    info.subresource = "/".join(rest[2:])
    info.verb = _verb(method, info.name, watch)
    if info.verb in ("list", "watch") and not info.name:
        info.name = _name_from_field_selector(query.get("fieldSelector", ""))
    return info
