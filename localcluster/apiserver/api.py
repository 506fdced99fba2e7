"""The REST semantics of the API, independent of HTTP: one request in, one ``Response`` out.

Reads are answered from the store's encoded bytes; writes go through validation, the life
cycle rules and the store. Watches and followed logs answer with a stream of chunks; a
``None`` chunk is an idle tick that lets the HTTP layer notice a client that went away.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import yaml

from localcluster.apiserver import errors, resources
from localcluster.apiserver.audit import AuditLog
from localcluster.apiserver.auth import ANONYMOUS, Authenticator
from localcluster.apiserver.lifecycle import Lifecycle
from localcluster.apiserver.patch import (
    JSON_PATCH,
    MERGE_TYPES,
    PatchError,
    json_patch,
    merge_patch,
)
from localcluster.apiserver.registry import (
    Conflict,
    Entry,
    NotFound,
    Store,
    TooOld,
    Watcher,
    encode,
)
from localcluster.apiserver.resources import ResourceType
from localcluster.apiserver.routing import RequestInfo, parse
from localcluster.apiserver.selectors import parse_field_selector, parse_label_selector
from localcluster.apiserver.strategies import STRATEGIES, delete_options, merge_update

log = logging.getLogger("localcluster.api")

Obj = dict[str, Any]
KUBERNETES_VERSION = {"major": "1", "minor": "34", "gitVersion": "v1.34.0+localcluster"}
DEFAULT_WATCH_SECONDS = 1800
IDLE_TICK = 1.0


@dataclass
class Response:
    code: int
    body: bytes = b""
    content_type: str = "application/json"
    chunks: Iterator[bytes | None] | None = None


class LogSource(Protocol):
    def logs(self, namespace: str, name: str, query: Mapping[str, str]) -> Response: ...


def json_response(code: int, obj: Any) -> Response:
    return Response(code, encode(obj))


def error_response(error: errors.ApiError) -> Response:
    return json_response(error.code, error.status())


class Api:
    """Answers API requests against one store."""

    def __init__(
        self,
        store: Store,
        lifecycle: Lifecycle,
        authenticator: Authenticator,
        *,
        logs: LogSource,
        audit: AuditLog | None = None,
        address: Callable[[], str] = lambda: "127.0.0.1",
    ) -> None:
        self.store = store
        self.lifecycle = lifecycle
        self.auth = authenticator
        self.logs = logs
        self.audit = audit
        self.address = address
        self.closing = False

    # -- entry point

    def handle(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> Response:
        received = time.time()
        info = parse(method, target)
        identity = ANONYMOUS
        try:
            identity = self.auth.authenticate(headers.get("Authorization"))
            if info.is_resource and identity is ANONYMOUS:
                raise errors.unauthorized()
            response = self._dispatch(info, headers, body)
        except errors.ApiError as error:
            response = error_response(error)
        except Exception as exc:  # a bug must answer 500, not drop the connection
            log.exception("internal error answering %s %s", method, target)
            response = error_response(errors.internal(str(exc)))
        if self.audit is not None:
            self.audit.record(
                identity=identity,
                verb=info.verb,
                uri=target,
                code=response.code,
                received=received,
                object_ref=info.object_ref(),
                long_running=response.chunks is not None,
            )
        return response

    def _dispatch(self, info: RequestInfo, headers: Mapping[str, str], body: bytes) -> Response:
        if not info.is_resource:
            return self._non_resource(info)
        rtype = info.resource
        if rtype is None:
            raise errors.path_not_found()
        if info.subresource and info.subresource not in rtype.subresources:
            raise errors.path_not_found()
        allowed = rtype.subresources.get(info.subresource, rtype.verbs)
        if info.verb not in allowed:
            raise errors.method_not_allowed()
        if info.subresource == "log":
            return self.logs.logs(info.namespace, info.name, info.query)
        if info.verb not in rtype.verbs:
            raise errors.method_not_allowed()
        handler = getattr(self, "_" + info.verb, None)
        if handler is None:
            raise errors.method_not_allowed()
        return handler(info, rtype, headers, body)

    # -- non-resource paths

    def _non_resource(self, info: RequestInfo) -> Response:
        path = info.path
        if path == "/version":
            return json_response(
                200,
                {
                    **KUBERNETES_VERSION,
                    "gitCommit": "",
                    "gitTreeState": "clean",
                    "buildDate": "",
                    "goVersion": "",
                    "compiler": "",
                    "platform": "linux/amd64",
                },
            )
        if path in ("/healthz", "/livez", "/readyz"):
            return Response(200, b"ok", "text/plain; charset=utf-8")
        if path == "/api":
            return json_response(
                200,
                {
                    "kind": "APIVersions",
                    "versions": ["v1"],
                    "serverAddressByClientCIDRs": [
                        {"clientCIDR": "0.0.0.0/0", "serverAddress": self.address()}
                    ],
                },
            )
        if path == "/apis":
            return json_response(200, resources.group_list())
        return self._discovery(path)

    def _discovery(self, path: str) -> Response:
        parts = path.strip("/").split("/")
        if parts == ["api", "v1"]:
            return json_response(200, resources.resource_list("", "v1"))
        if len(parts) == 3 and parts[0] == "apis":
            found = resources.resource_list(parts[1], parts[2])
            if found is not None:
                return json_response(200, found)
        if len(parts) == 2 and parts[0] == "apis":
            for group in resources.group_list()["groups"]:
                if group["name"] == parts[1]:
                    return json_response(200, {"kind": "APIGroup", "apiVersion": "v1", **group})
        raise errors.path_not_found()

    # -- reads

    def _get(self, info: RequestInfo, rtype: ResourceType, *_: Any) -> Response:
        entry = self._entry(info, rtype)
        return Response(200, entry.raw)

    def _entry(self, info: RequestInfo, rtype: ResourceType) -> Entry:
        namespace = info.namespace if rtype.namespaced else ""
        entry = self.store.get(rtype.name, namespace, info.name)
        if entry is None:
            raise errors.not_found(rtype.name, rtype.group, info.name)
        return entry

    def _selection(
        self, info: RequestInfo, rtype: ResourceType
    ) -> tuple[Callable[[Obj], bool], str | None, dict[str, str]]:
        """The selectors as a predicate, the one name they allow if they name one, and
        their ``key=value`` label terms."""
        try:
            labels = parse_label_selector(info.query.get("labelSelector"))
            fields = parse_field_selector(info.query.get("fieldSelector"))
        except ValueError as exc:
            raise errors.bad_request(str(exc)) from None
        supported = set(rtype.fields({}))
        for name in fields.names() - supported:
            raise errors.bad_request(f"field label not supported: {name}")

        def matches(obj: Obj) -> bool:
            meta_labels = obj.get("metadata", {}).get("labels") or {}
            if not labels.matches(meta_labels):
                return False
            return not fields.terms or fields.matches(rtype.fields(obj))

        return matches, fields.exact("metadata.name"), labels.exact()

    def _scope(self, info: RequestInfo, rtype: ResourceType) -> str | None:
        if not rtype.namespaced:
            return ""
        return info.namespace or None

    def _list(self, info: RequestInfo, rtype: ResourceType, *_: Any) -> Response:
        predicate, name, labels = self._selection(info, rtype)
        rv = self.store.resource_version
        entries = self.store.select(rtype.name, self._scope(info, rtype), name, labels)
        chosen = [e for e in entries if predicate(e.obj)]
        meta: Obj = {"resourceVersion": str(rv)}
        chosen = self._page(info, chosen, meta)
        head = encode({"kind": rtype.list_kind, "apiVersion": rtype.api_version, "metadata": meta})
        items = b",".join(e.raw for e in chosen)
        return Response(200, head[:-1] + b',"items":[' + items + b"]}")

    def _page(self, info: RequestInfo, chosen: list[Entry], meta: Obj) -> list[Entry]:
        token = info.query.get("continue")
        if token:
            try:
                start = json.loads(base64.urlsafe_b64decode(token.encode()))["start"]
            except (ValueError, KeyError, TypeError):
                raise errors.bad_request("invalid continue token") from None
            chosen = [e for e in chosen if [e.namespace, e.name] > start]
        try:
            limit = int(info.query.get("limit") or 0)
        except ValueError:
            raise errors.bad_request("limit must be an integer") from None
        if 0 < limit < len(chosen):
            last = chosen[limit - 1]
            state = json.dumps({"start": [last.namespace, last.name]}).encode()
            meta["continue"] = base64.urlsafe_b64encode(state).decode()
            meta["remainingItemCount"] = len(chosen) - limit
            chosen = chosen[:limit]
        return chosen

    def _watch(self, info: RequestInfo, rtype: ResourceType, *_: Any) -> Response:
        predicate, name, _ = self._selection(info, rtype)
        raw_rv = info.query.get("resourceVersion", "")
        try:
            since = None if raw_rv in ("", "0") else int(raw_rv)
        except ValueError:
            raise errors.bad_request(f'invalid resource version "{raw_rv}"') from None
        try:
            seconds = float(info.query.get("timeoutSeconds") or DEFAULT_WATCH_SECONDS)
        except ValueError:
            raise errors.bad_request("timeoutSeconds must be a number") from None
        try:
            watcher, first = self.store.watch(
                rtype.name, self._scope(info, rtype), predicate, since=since, name=name
            )
        except TooOld as exc:
            error = errors.expired(str(exc)).status()
            event = encode({"type": "ERROR", "object": error}) + b"\n"
            return Response(200, chunks=iter([event]))
        chunks = self._watch_stream(watcher, first, time.monotonic() + seconds)
        return Response(200, chunks=chunks)

    def _watch_stream(
        self, watcher: Watcher, first: list[tuple[str, Entry]], deadline: float
    ) -> Iterator[bytes | None]:
        try:
            for kind, entry in first:
                yield _event(kind, entry)
            while not self.closing:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                try:
                    event = watcher.next(min(IDLE_TICK, remaining))
                except EOFError:
                    return
                yield None if event is None else _event(*event)
        finally:
            self.store.unwatch(watcher)

    # -- writes

    def _body(self, headers: Mapping[str, str], body: bytes) -> Any:
        content_type = (headers.get("Content-Type") or "application/json").split(";")[0].strip()
        try:
            if "yaml" in content_type:
                return yaml.safe_load(body.decode())
            return json.loads(body or b"null")
        except (ValueError, yaml.YAMLError) as exc:
            raise errors.bad_request(
                f"couldn't get version/kind; json parse error: {exc}"
            ) from None

    def _object_body(self, info: RequestInfo, rtype: ResourceType, headers, body) -> Obj:
        obj = self._body(headers, body)
        if not isinstance(obj, dict):
            raise errors.bad_request("the body of the request must be a JSON object")
        kind, version = obj.get("kind"), obj.get("apiVersion")
        if kind and kind != rtype.kind:
            raise errors.bad_request(
                f"the object provided is unrecognized (must be of type {rtype.kind}): "
                f"{kind} is not a {rtype.kind}"
            )
        if version and version != rtype.api_version:
            raise errors.bad_request(
                f"the API version in the data ({version}) does not match the expected API "
                f"version ({rtype.api_version})"
            )
        meta = obj.get("metadata")
        if isinstance(meta, dict) and rtype.namespaced:
            given = meta.get("namespace")
            if given and info.namespace and given != info.namespace:
                raise errors.bad_request(
                    "the namespace of the provided object does not match the namespace sent "
                    "on the request"
                )
        return obj

    def _create(self, info: RequestInfo, rtype: ResourceType, headers, body) -> Response:
        if info.name:
            raise errors.method_not_allowed()
        obj = self._object_body(info, rtype, headers, body)
        strategy = STRATEGIES[rtype.name]
        strategy.validate(obj)
        if rtype is resources.NAMESPACES:
            return self._create_namespace(obj)
        if info.flag("dryRun") or info.query.get("dryRun") == "All":
            return json_response(201, obj)
        entry = self.lifecycle.create(
            rtype, obj, namespace=info.namespace, prepare=strategy.prepare
        )
        return Response(201, entry.raw)

    def _create_namespace(self, obj: Obj) -> Response:
        name = obj["metadata"]["name"]
        if self.store.get("namespaces", "", name) is not None:
            raise errors.already_exists("namespaces", "", name)
        self.lifecycle.ensure_namespace(name)
        entry = self.store.get("namespaces", "", name)
        assert entry is not None
        return Response(201, entry.raw)

    def _update(self, info: RequestInfo, rtype: ResourceType, headers, body) -> Response:
        obj = self._object_body(info, rtype, headers, body)
        meta = obj.get("metadata") or {}
        if meta.get("name") and meta["name"] != info.name:
            raise errors.bad_request(
                f"the name of the object ({meta['name']}) does not match the name on the URL "
                f"({info.name})"
            )
        return self._replace(info, rtype, lambda old: obj, expect_rv=meta.get("resourceVersion"))

    def _patch(self, info: RequestInfo, rtype: ResourceType, headers, body) -> Response:
        patch = self._body(headers, body)
        content_type = (headers.get("Content-Type") or "").split(";")[0].strip()
        if content_type in MERGE_TYPES:
            if not isinstance(patch, dict):
                raise errors.bad_request("a merge patch must be a JSON object")
            apply: Callable[[Obj], Obj] = lambda old: merge_patch(old, patch)  # noqa: E731
        elif content_type == JSON_PATCH:
            apply = lambda old: json_patch(old, patch)  # noqa: E731
        else:
            raise errors.unsupported_media_type(content_type)

        def patched(old: Obj) -> Obj:
            try:
                result = apply(old)
            except PatchError as exc:
                raise errors.ApiError(
                    422, "Invalid", f"the patch cannot be applied: {exc}"
                ) from None
            if not isinstance(result, dict):
                raise errors.bad_request("the patch does not produce an object")
            return result

        return self._replace(info, rtype, patched, expect_rv=None)

    def _replace(
        self,
        info: RequestInfo,
        rtype: ResourceType,
        make: Callable[[Obj], Obj],
        *,
        expect_rv: str | None,
    ) -> Response:
        strategy = STRATEGIES[rtype.name]
        namespace = info.namespace if rtype.namespaced else ""

        def mutate(old: Obj) -> Obj | None:
            new = merge_update(info, strategy, old, make(json.loads(json.dumps(old))))
            return None if new == old else new

        try:
            entry = self.store.update(rtype.name, namespace, info.name, mutate, expect_rv=expect_rv)
        except NotFound:
            raise errors.not_found(rtype.name, rtype.group, info.name) from None
        except Conflict:
            raise errors.conflict(
                rtype.name,
                rtype.group,
                info.name,
                "the object has been modified; please apply your changes to the latest version "
                "and try again",
            ) from None
        entry, _ = self.lifecycle.finalize_if_done(rtype, entry)
        return Response(200, entry.raw)

    def _delete(self, info: RequestInfo, rtype: ResourceType, headers, body) -> Response:
        options = self._delete_options(info, headers, body)
        namespace = info.namespace if rtype.namespaced else ""
        entry, gone = self.lifecycle.delete(rtype, namespace, info.name, **options)
        if gone and rtype is not resources.PODS:
            uid = entry.obj["metadata"].get("uid", "")
            return json_response(
                200, errors.success_status(rtype.name, rtype.group, info.name, uid)
            )
        return Response(200, entry.raw)

    def _deletecollection(self, info: RequestInfo, rtype: ResourceType, headers, body) -> Response:
        options = self._delete_options(info, headers, body)
        predicate, name, labels = self._selection(info, rtype)
        rv = self.store.resource_version
        entries = self.store.select(rtype.name, self._scope(info, rtype), name, labels)
        deleted = []
        for entry in entries:
            if predicate(entry.obj):
                try:
                    final, _ = self.lifecycle.delete(rtype, entry.namespace, entry.name, **options)
                except errors.ApiError:
                    continue
                deleted.append(final.raw)
        head = encode(
            {
                "kind": rtype.list_kind,
                "apiVersion": rtype.api_version,
                "metadata": {"resourceVersion": str(rv)},
            }
        )
        return Response(200, head[:-1] + b',"items":[' + b",".join(deleted) + b"]}")

    def _delete_options(self, info: RequestInfo, headers, body: bytes) -> dict[str, Any]:
        return delete_options(info, self._body(headers, body) if body.strip() else {})


def _event(kind: str, entry: Entry) -> bytes:
    return b'{"type":"' + kind.encode() + b'","object":' + entry.raw + b"}\n"
