"""Pods from a Job's template, as the job controller and the API server's admission make them.

The pod gets ``generateName: <job>-``, the template's labels and annotations, a controlling
``ownerReference`` to the Job, the ``default`` service account when none is named, the
``kube-api-access`` projected volume the ServiceAccount admission plugin adds (unless
``automountServiceAccountToken`` is false) and its QoS class.
"""

from __future__ import annotations

import copy
from typing import Any

from localcluster.apiserver.meta import name_suffix, parse_quantity

Obj = dict[str, Any]
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


def qos_class(spec: Obj) -> str:
    containers = [*spec.get("initContainers", []), *spec.get("containers", [])]
    requests_any, guaranteed = False, True
    for container in containers:
        res = container.get("resources") or {}
        limits, requests = res.get("limits") or {}, res.get("requests") or {}
        requests_any = requests_any or bool(limits) or bool(requests)
        for key in ("cpu", "memory"):
            differs = key in requests and parse_quantity(requests[key]) != parse_quantity(
                limits.get(key, 0)
            )
            if key not in limits or differs:
                guaranteed = False
    if not requests_any:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def mount_service_account_token(spec: Obj) -> None:
    """Add the ``kube-api-access`` volume the ServiceAccount admission plugin adds to pods."""
    name = f"kube-api-access-{name_suffix()}"
    spec.setdefault("volumes", []).append(
        {
            "name": name,
            "projected": {
                "defaultMode": 0o644,
                "sources": [
                    {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                    {
                        "configMap": {
                            "name": "kube-root-ca.crt",
                            "items": [{"key": "ca.crt", "path": "ca.crt"}],
                        }
                    },
                    {
                        "downwardAPI": {
                            "items": [
                                {
                                    "fieldRef": {
                                        "apiVersion": "v1",
                                        "fieldPath": "metadata.namespace",
                                    },
                                    "path": "namespace",
                                }
                            ]
                        }
                    },
                ],
            },
        }
    )
    for container in [*spec.get("initContainers", []), *spec.get("containers", [])]:
        mounts = container.setdefault("volumeMounts", [])
        if not any(m.get("mountPath") == SERVICE_ACCOUNT_DIR for m in mounts):
            mounts.append({"name": name, "mountPath": SERVICE_ACCOUNT_DIR, "readOnly": True})


def pod_from_template(job: Obj) -> Obj:
    meta, template = job["metadata"], job["spec"]["template"]
    template_meta = template.get("metadata") or {}
    spec = copy.deepcopy(template["spec"])
    account = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
    spec["serviceAccountName"] = spec["serviceAccount"] = account
    spec.setdefault("priority", 0)
    if spec.get("automountServiceAccountToken") is not False:
        mount_service_account_token(spec)
    pod_meta: Obj = {
        "generateName": meta["name"] + "-",
        "labels": dict(template_meta.get("labels") or {}),
        "ownerReferences": [
            {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "name": meta["name"],
                "uid": meta["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
    }
    if template_meta.get("annotations"):
        pod_meta["annotations"] = dict(template_meta["annotations"])
    return {
        "metadata": pod_meta,
        "spec": spec,
        "status": {"phase": "Pending", "qosClass": qos_class(spec)},
    }
