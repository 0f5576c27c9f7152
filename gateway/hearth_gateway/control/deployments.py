"""Deployment <-> ``accounts/<a>/deployments/<d>``; ``:scale`` is the scale subresource."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .common import (
    Directory,
    Json,
    Obj,
    ResourceKind,
    base_json,
    copy_fields,
    full_reference,
    new_object,
    spec_from_body,
)
from .errors import invalid

SPEC_FIELDS = (
    "baseModel",
    "displayName",
    "description",
    "minReplicaCount",
    "maxReplicaCount",
    "autoscalingPolicy",
    "acceleratorType",
    "acceleratorCount",
    "precision",
    "servingEngine",  # a Hearth extension: HEARTH (default) or VLLM
    "enableAddons",
    "numPeftDeviceCached",
    "numPeftHostCached",
    "maxPeftRank",
    "maxContextLength",
    "serverless",
)
STATUS_FIELDS = ("replicaCount", "desiredReplicaCount", "replicaStats")
#: Hearth extension (not in Fireworks' Deployment): the CR's Kubernetes conditions
#: (type, status, reason, message, lastTransitionTime), which the web app's detail shows.
HEARTH_STATUS_FIELDS = ("conditions",)
IGNORED = (
    "replicaCount",
    "desiredReplicaCount",
    "replicaStats",
    "conditions",
    "deleteTime",
    "purgeTime",
)


def to_json(obj: Obj, directory: Directory) -> Json:
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    account = obj["metadata"]["namespace"]
    out = base_json(obj, "deployments", directory)
    out.update(copy_fields(spec, SPEC_FIELDS))
    out["baseModel"] = full_reference(spec.get("baseModel"), "models", account)
    out.update(copy_fields(status, STATUS_FIELDS + HEARTH_STATUS_FIELDS))
    out.setdefault("replicaCount", 0)
    out.setdefault("desiredReplicaCount", 0)
    return out


def create(account: str, deployment_id: str, body: Mapping[str, Any], creator: str) -> Obj:
    spec = spec_from_body(body, allowed=SPEC_FIELDS, where="deployment", ignored=IGNORED)
    if not spec.get("baseModel"):
        raise invalid("deployment.baseModel: required, e.g. accounts/<a>/models/<m>")
    return new_object("Deployment", deployment_id, account, spec, creator)


def scale_patch(body: Mapping[str, Any]) -> Json:
    """The scale subresource patch for ``{replicaCount}``."""
    count = body.get("replicaCount", 0)
    if isinstance(count, str) and count.isdigit():
        count = int(count)
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise invalid(f"replicaCount: must be a non-negative integer, got {count!r}")
    return {"spec": {"replicas": count}}


DEPLOYMENTS = ResourceKind(
    kind="Deployment",
    plural="deployments",
    collection="deployments",
    list_key="deployments",
    to_json=to_json,
    fields=frozenset({"name", "createTime", "updateTime", "state", "status", "createdBy"})
    | frozenset(SPEC_FIELDS)
    | frozenset(STATUS_FIELDS)
    | frozenset(HEARTH_STATUS_FIELDS),
    filterable=("state", "baseModel", "displayName", "acceleratorType", "createdBy"),
    updatable=frozenset(SPEC_FIELDS) - {"serverless"},
    default_order=(("createTime", False),),
)
