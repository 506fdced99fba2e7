"""Offline validation of an OpenShift Route, which kubernetes-validate has no schema for.

The metadata is checked against Kubernetes' own ObjectMeta schema (the strict one
kubernetes-validate ships); the spec against a schema written from the
``route.openshift.io/v1`` API reference, limited to the fields of RouteSpec and
strict in the same way (unknown fields, wrong types and enum values are errors).
Not checked: rules the API server applies in code, such as a host name already taken
by another route, or certificates that do not parse.
"""

from __future__ import annotations

from typing import Any

import jsonschema
from kubernetes_validate.utils import schema_contents
from referencing import Registry, Resource

DEFINITIONS = "https://kubernetes.io/api/_definitions.json"
_DNS_SUBDOMAIN = (
    r"^([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9\-]{0,61}[a-zA-Z0-9])"
    r"(\.([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9\-]{0,61}[a-zA-Z0-9]))*$"
)


def _strict(properties: dict[str, Any], *, required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(required),
        "additionalProperties": False,
    }


_TARGET = _strict(
    {
        "kind": {"enum": ["Service", ""]},
        "name": {"type": "string", "minLength": 1},
        "weight": {"type": "integer", "minimum": 0, "maximum": 256},
    },
    required=("kind", "name"),
)

_SPEC = _strict(
    {
        # Empty asks the router to choose a host name.
        "host": {
            "type": "string",
            "maxLength": 253,
            "anyOf": [{"const": ""}, {"pattern": _DNS_SUBDOMAIN}],
        },
        "subdomain": {"type": "string", "maxLength": 253, "pattern": _DNS_SUBDOMAIN},
        "path": {"type": "string", "pattern": "^/"},
        "to": _TARGET,
        "alternateBackends": {"type": "array", "maxItems": 3, "items": _TARGET},
        "port": _strict(
            {"targetPort": {"type": ["integer", "string"], "not": {"enum": [0, ""]}}},
            required=("targetPort",),
        ),
        "tls": _strict(
            {
                "termination": {"enum": ["edge", "reencrypt", "passthrough"]},
                "insecureEdgeTerminationPolicy": {"enum": ["Allow", "None", "Redirect", ""]},
                "certificate": {"type": "string"},
                "key": {"type": "string"},
                "caCertificate": {"type": "string"},
                "destinationCACertificate": {"type": "string"},
            },
            required=("termination",),
        ),
        "wildcardPolicy": {"enum": ["None", "Subdomain", ""]},
    },
    required=("to",),
)

ROUTE_SCHEMA: dict[str, Any] = _strict(
    {
        "apiVersion": {"const": "route.openshift.io/v1"},
        "kind": {"const": "Route"},
        "metadata": {
            "$ref": f"{DEFINITIONS}#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
        },
        "spec": _SPEC,
    },
    required=("apiVersion", "kind", "metadata", "spec"),
)


def validate_route(route: dict[str, Any], version: str = "1.30") -> None:
    """Raise :class:`jsonschema.ValidationError` unless ``route`` is a valid Route."""
    definitions = schema_contents(
        f"kubernetes-json-schema/v{version}.0-local-strict/_definitions.json", version
    )
    registry = Registry().with_resource(DEFINITIONS, Resource.from_contents(definitions))
    validator = jsonschema.Draft202012Validator(ROUTE_SCHEMA, registry=registry)
    validator.validate(route)
