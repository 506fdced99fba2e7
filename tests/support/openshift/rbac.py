"""Compare RBAC rules with the calls an audit log records.

``granted(objects)`` reads the Roles and RoleBindings of a processed template;
``calls_by(audit_log, namespace)`` reads the calls service accounts made in a namespace
from an ``audit.k8s.io/v1`` log (the local cluster's, or a real API server's). Both give,
per account (``system:serviceaccount:<namespace>:<name>``), a set of
``(apiGroup, resource[/subresource], verb)``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

Obj = dict[str, Any]
Call = tuple[str, str, str]
SERVICE_ACCOUNT = "system:serviceaccount:"


def granted(objects: list[Obj]) -> dict[str, set[Call]]:
    """What each service account bound by the template may do."""
    roles = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Role"}
    result: dict[str, set[Call]] = {}
    for binding in (o for o in objects if o["kind"] == "RoleBinding"):
        assert binding["roleRef"]["kind"] == "Role", binding["roleRef"]
        rules = expand(roles[binding["roleRef"]["name"]]["rules"])
        for subject in binding["subjects"]:
            assert subject["kind"] == "ServiceAccount", subject
            account = f"{SERVICE_ACCOUNT}{subject['namespace']}:{subject['name']}"
            result.setdefault(account, set()).update(rules)
    return result


def expand(rules: list[Obj]) -> set[Call]:
    """One (group, resource, verb) per combination a rule allows; wildcards refused."""
    calls = set()
    for rule in rules:
        assert "resourceNames" not in rule, rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    assert "*" not in (group, resource, verb), f"wildcard in {rule}"
                    calls.add((group, resource, verb))
    return calls


def calls_by(audit_log: Path, namespace: str) -> dict[str, set[Call]]:
    """The calls each service account made in ``namespace``, from the audit log."""
    result: dict[str, set[Call]] = {}
    with open(audit_log, encoding="utf-8") as handle:
        for line in handle:
            event = json.loads(line)
            ref = event.get("objectRef") or {}
            user = event["user"]["username"]
            if ref.get("namespace") != namespace or not user.startswith(SERVICE_ACCOUNT):
                continue
            resource = ref["resource"]
            if ref.get("subresource"):
                resource += "/" + ref["subresource"]
            result.setdefault(user, set()).add((ref.get("apiGroup", ""), resource, event["verb"]))
    return result
