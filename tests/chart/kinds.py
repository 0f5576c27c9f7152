"""Validation of rendered objects against the Kubernetes 1.35 schemas, offline.

Built-in kinds: the strict JSON schemas of Kubernetes v1.35.0 that the kubernetes-validate
package ships (generated from the API server's OpenAPI; strict = unknown fields refused), the
same check `kubeconform -strict` makes. CustomResourceDefinitions: the same, as
apiextensions.k8s.io/v1 objects. The three kinds of other projects' CRDs the chart can render
(Gateway API HTTPRoute, prometheus-operator ServiceMonitor and PodMonitor) have no schema on
this machine: they are checked against the small schemas below, written from those projects'
API references for the fields this chart sets (required fields, types, enums), unknown fields
refused. That is weaker than the upstream CRD schemas; the kind-cluster suite installs them.
"""

from __future__ import annotations

from typing import Any

import jsonschema
import kubernetes_validate

KUBERNETES_VERSION = "1.35.0"

_STR = {"type": "string", "minLength": 1}
_LABELS = {"type": "object", "additionalProperties": {"type": "string"}}
_METADATA = {
    "type": "object",
    "required": ["name", "namespace"],
    "properties": {"name": _STR, "namespace": _STR, "labels": _LABELS, "annotations": _LABELS},
    "additionalProperties": False,
}
_SELECTOR = {
    "type": "object",
    "properties": {"matchLabels": _LABELS},
    "required": ["matchLabels"],
    "additionalProperties": False,
}
_DURATION = {
    "type": "string",
    "pattern": "^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?"
    "(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$",
}
_ENDPOINT = {
    "type": "object",
    "required": ["port"],
    "properties": {
        "port": _STR,
        "path": {"type": "string", "pattern": "^/"},
        "interval": _DURATION,
    },
    "additionalProperties": False,
}


def _kind(api_version: str, kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": api_version},
            "kind": {"const": kind},
            "metadata": _METADATA,
            "spec": spec,
        },
        "additionalProperties": False,
    }


OTHER_KINDS: dict[tuple[str, str], dict[str, Any]] = {
    ("gateway.networking.k8s.io/v1", "HTTPRoute"): _kind(
        "gateway.networking.k8s.io/v1",
        "HTTPRoute",
        {
            "type": "object",
            "required": ["parentRefs", "rules"],
            "properties": {
                "parentRefs": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 32,
                    "items": {
                        "type": "object",
                        "required": ["name"],
                        "properties": {
                            "name": _STR,
                            "namespace": _STR,
                            "sectionName": _STR,
                            "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                            "group": {"type": "string"},
                            "kind": _STR,
                        },
                        "additionalProperties": False,
                    },
                },
                "hostnames": {"type": "array", "maxItems": 16, "items": _STR},
                "rules": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "properties": {
                            "matches": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "properties": {
                                        "path": {
                                            "type": "object",
                                            "properties": {
                                                "type": {
                                                    "enum": [
                                                        "Exact",
                                                        "PathPrefix",
                                                        "RegularExpression",
                                                    ]
                                                },
                                                "value": {"type": "string", "pattern": "^/"},
                                            },
                                            "additionalProperties": False,
                                        }
                                    },
                                    "additionalProperties": False,
                                },
                            },
                            "backendRefs": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "required": ["name", "port"],
                                    "properties": {
                                        "name": _STR,
                                        "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                                    },
                                    "additionalProperties": False,
                                },
                            },
                        },
                        "additionalProperties": False,
                    },
                },
            },
            "additionalProperties": False,
        },
    ),
    ("monitoring.coreos.com/v1", "ServiceMonitor"): _kind(
        "monitoring.coreos.com/v1",
        "ServiceMonitor",
        {
            "type": "object",
            "required": ["selector", "endpoints"],
            "properties": {
                "selector": _SELECTOR,
                "endpoints": {"type": "array", "minItems": 1, "items": _ENDPOINT},
            },
            "additionalProperties": False,
        },
    ),
    ("monitoring.coreos.com/v1", "PodMonitor"): _kind(
        "monitoring.coreos.com/v1",
        "PodMonitor",
        {
            "type": "object",
            "required": ["selector", "podMetricsEndpoints"],
            "properties": {
                "selector": _SELECTOR,
                "namespaceSelector": {
                    "type": "object",
                    "properties": {
                        "any": {"type": "boolean"},
                        "matchNames": {"type": "array", "items": _STR},
                    },
                    "additionalProperties": False,
                },
                "podMetricsEndpoints": {"type": "array", "minItems": 1, "items": _ENDPOINT},
            },
            "additionalProperties": False,
        },
    ),
}


def validation_errors(obj: dict[str, Any]) -> list[str]:
    """Every schema violation of one object, as `Kind/name: path: message` lines."""
    where = f"{obj.get('kind')}/{(obj.get('metadata') or {}).get('name')}"
    other = OTHER_KINDS.get((obj.get("apiVersion", ""), obj.get("kind", "")))
    if other is not None:
        validator = jsonschema.Draft202012Validator(other)
        return [
            f"{where}: {'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
            for e in validator.iter_errors(obj)
        ]
    try:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.SchemaNotFoundError:
        return [
            f"{where}: no Kubernetes {KUBERNETES_VERSION} schema for "
            f"{obj.get('apiVersion')} {obj.get('kind')}"
        ]
    except kubernetes_validate.ValidationError as error:
        path = ".".join(map(str, error.path)) or "<root>"
        return [f"{where}: {path}: {error.message}"]
    return []
