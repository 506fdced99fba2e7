"""Object life cycle rules shared by the API and the controllers.

Server-set metadata on creation, namespaces that come into being on first use (with their
``kube-root-ca.crt`` ConfigMap and ``default`` ServiceAccount), and deletion as the API
server does it: pods are deleted gracefully (the kubelet finishes the job), Jobs default to
the ``Orphan`` propagation policy, ``Orphan`` and ``Foreground`` work through finalizers
that the garbage collector removes, and an object goes once it is marked for deletion and
has no finalizers left.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

from localcluster.apiserver import errors, resources
from localcluster.apiserver.meta import name_suffix, new_uid, timestamp
from localcluster.apiserver.podspec import GRACE_SECONDS
from localcluster.apiserver.registry import AlreadyExists, Entry, NotFound, Store
from localcluster.apiserver.resources import ResourceType

Obj = dict[str, Any]

ORPHAN = "orphan"
FOREGROUND = "foregroundDeletion"
POLICIES = ("Orphan", "Background", "Foreground")


class Lifecycle:
    def __init__(self, store: Store, *, ca_pem: str) -> None:
        self.store = store
        self.ca_pem = ca_pem

    # -- creation

    def create(
        self,
        rtype: ResourceType,
        obj: Obj,
        *,
        namespace: str,
        prepare: Callable[[Obj], None] | None = None,
    ) -> Entry:
        """Store a validated new object with its server-set metadata.

        ``prepare`` fills in type-specific defaults once name and uid are known.
        """
        meta = obj["metadata"]
        if rtype.namespaced:
            meta["namespace"] = namespace
            self.ensure_namespace(namespace)
        else:
            meta.pop("namespace", None)
        for key in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds"):
            meta.pop(key, None)
        meta["uid"] = new_uid()
        meta["creationTimestamp"] = timestamp()
        if rtype in (resources.JOBS, resources.PODS):
            meta["generation"] = 1
        obj["kind"], obj["apiVersion"] = rtype.kind, rtype.api_version
        if not meta.get("name"):
            meta["name"] = self._generate_name(rtype, namespace, meta["generateName"])
        if prepare is not None:
            prepare(obj)
        try:
            return self.store.create(rtype.name, obj)
        except AlreadyExists:
            raise errors.already_exists(rtype.name, rtype.group, meta["name"]) from None

    def _generate_name(self, rtype: ResourceType, namespace: str, prefix: str) -> str:
        space = namespace if rtype.namespaced else ""
        for _ in range(8):
            name = prefix + name_suffix()
            if self.store.get(rtype.name, space, name) is None:
                return name
        return prefix + name_suffix(8)

    def ensure_namespace(self, namespace: str) -> None:
        if self.store.get("namespaces", "", namespace) is not None:
            return
        now = timestamp()
        base = {"uid": new_uid(), "creationTimestamp": now}
        namespace_obj = {
            "kind": "Namespace",
            "apiVersion": "v1",
            "metadata": {
                "name": namespace,
                "labels": {"kubernetes.io/metadata.name": namespace},
                **base,
            },
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"},
        }
        root_ca = {
            "kind": "ConfigMap",
            "apiVersion": "v1",
            "metadata": {"name": "kube-root-ca.crt", "namespace": namespace, **base},
            "data": {"ca.crt": self.ca_pem},
        }
        account = {
            "kind": "ServiceAccount",
            "apiVersion": "v1",
            "metadata": {"name": "default", "namespace": namespace, **base},
        }
        for resource, obj in (
            ("namespaces", namespace_obj),
            ("configmaps", root_ca),
            ("serviceaccounts", account),
        ):
            obj["metadata"]["uid"] = new_uid()
            with contextlib.suppress(AlreadyExists):
                self.store.create(resource, obj)

    # -- deletion

    def delete(
        self,
        rtype: ResourceType,
        namespace: str,
        name: str,
        *,
        propagation: str | None = None,
        grace: int | None = None,
        uid: str | None = None,
        resource_version: str | None = None,
    ) -> tuple[Entry, bool]:
        """Delete or mark for deletion; returns the object and whether it is gone."""
        entry = self.store.get(rtype.name, namespace, name)
        if entry is None:
            raise errors.not_found(rtype.name, rtype.group, name)
        self._check_preconditions(rtype, entry, uid, resource_version)
        if rtype is resources.PODS:
            return self._delete_pod(entry, grace)
        policy = propagation or ("Orphan" if rtype is resources.JOBS else "Background")
        if policy not in POLICIES:
            check_causes = [
                errors.Cause(
                    "propagationPolicy",
                    "FieldValueNotSupported",
                    f'Unsupported value: "{policy}": supported values: "Orphan", '
                    '"Background", "Foreground"',
                )
            ]
            raise errors.invalid("DeleteOptions", "", "", check_causes)
        add = {"Orphan": ORPHAN, "Foreground": FOREGROUND}.get(policy)
        return self._mark(rtype, entry, add, grace=0)

    def _check_preconditions(
        self, rtype: ResourceType, entry: Entry, uid: str | None, resource_version: str | None
    ) -> None:
        meta = entry.obj["metadata"]
        if uid and uid != meta.get("uid"):
            why = (
                f"Precondition failed: UID in precondition: {uid}, "
                f"UID in object meta: {meta['uid']}"
            )
            raise errors.conflict(rtype.name, rtype.group, meta["name"], why)
        if resource_version and resource_version != meta.get("resourceVersion"):
            why = (
                f"Precondition failed: ResourceVersion in precondition: {resource_version}, "
                f"ResourceVersion in object meta: {meta['resourceVersion']}"
            )
            raise errors.conflict(rtype.name, rtype.group, meta["name"], why)

    def _delete_pod(self, entry: Entry, grace: int | None) -> tuple[Entry, bool]:
        pod = entry.obj
        if grace is None:
            grace = pod.get("spec", {}).get("terminationGracePeriodSeconds", GRACE_SECONDS)
        phase = pod.get("status", {}).get("phase")
        # Like the API server: a pod that never reached a node or has finished has nothing
        # to stop, so it goes at once.
        if phase in ("Succeeded", "Failed") or not pod.get("spec", {}).get("nodeName"):
            grace = 0
        return self._mark(resources.PODS, entry, None, grace=max(grace, 0))

    def _mark(
        self, rtype: ResourceType, entry: Entry, finalizer: str | None, *, grace: int
    ) -> tuple[Entry, bool]:
        meta = entry.obj["metadata"]
        finalizers = list(meta.get("finalizers") or [])
        if finalizer and finalizer not in finalizers and not meta.get("deletionTimestamp"):
            finalizers.append(finalizer)
        if not finalizers and grace == 0:
            return self._remove(rtype, entry), True

        def mark(obj: Obj) -> Obj | None:
            m = obj["metadata"]
            current = m.get("deletionGracePeriodSeconds")
            if m.get("deletionTimestamp") and current is not None and current <= grace:
                return None
            m["deletionTimestamp"] = timestamp(time.time() + grace)
            m["deletionGracePeriodSeconds"] = grace
            if finalizers:
                m["finalizers"] = finalizers
            return obj

        try:
            updated = self.store.update(rtype.name, entry.namespace, entry.name, mark)
        except NotFound:
            raise errors.not_found(rtype.name, rtype.group, entry.name) from None
        return self.finalize_if_done(rtype, updated)

    def _remove(self, rtype: ResourceType, entry: Entry) -> Entry:
        try:
            return self.store.delete(rtype.name, entry.namespace, entry.name)
        except NotFound:
            raise errors.not_found(rtype.name, rtype.group, entry.name) from None

    def finalize_if_done(self, rtype: ResourceType, entry: Entry) -> tuple[Entry, bool]:
        """Remove an object marked for deletion once nothing holds it any more."""
        meta = entry.obj["metadata"]
        if not meta.get("deletionTimestamp") or meta.get("finalizers"):
            return entry, False
        if rtype is resources.PODS and meta.get("deletionGracePeriodSeconds", 0) > 0:
            return entry, False
        try:
            return self.store.delete(rtype.name, entry.namespace, entry.name), True
        except NotFound:
            return entry, True

    def remove_finalizer(
        self, rtype: ResourceType, namespace: str, name: str, finalizer: str
    ) -> None:
        def drop(obj: Obj) -> Obj | None:
            finalizers = obj["metadata"].get("finalizers") or []
            if finalizer not in finalizers:
                return None
            obj["metadata"]["finalizers"] = [f for f in finalizers if f != finalizer]
            if not obj["metadata"]["finalizers"]:
                del obj["metadata"]["finalizers"]
            return obj

        try:
            entry = self.store.update(rtype.name, namespace, name, drop)
        except NotFound:
            return
        self.finalize_if_done(rtype, entry)

    def pod_terminated(self, namespace: str, name: str, uid: str) -> None:
        """The kubelet has stopped everything of a pod marked for deletion: let it go."""
        entry = self.store.get("pods", namespace, name)
        if entry is None or entry.obj["metadata"].get("uid") != uid:
            return

        if not entry.obj["metadata"].get("finalizers"):
            with contextlib.suppress(NotFound):
                self.store.delete("pods", namespace, name, uid=uid)
            return

        def zero(obj: Obj) -> Obj:
            obj["metadata"]["deletionGracePeriodSeconds"] = 0
            return obj

        with contextlib.suppress(NotFound):
            self.store.update("pods", namespace, name, zero)
