"""Deployment <-> ``accounts/<a>/deployments/<d>``; ``:scale`` is the scale subresource."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
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


#: The most events a deployment's ``:events`` answer carries (newest first).
MAX_EVENTS = 50


def events_json(events: list[Obj]) -> list[Json]:
    """Hearth extension ``GET .../deployments/<d>:events``: the Kubernetes Events about the
    hearth.dev Deployment (not a same-named object of another group), newest first, with
    times in RFC 3339 UTC."""
    mine = [
        e
        for e in events
        if str((e.get("involvedObject") or {}).get("apiVersion") or "").startswith("hearth.dev/")
    ]

    def last_seen(event: Obj) -> datetime:
        meta = event.get("metadata") or {}
        moment = event.get("lastTimestamp") or event.get("eventTime")
        return _moment(moment or meta.get("creationTimestamp"))

    mine.sort(key=last_seen, reverse=True)
    return [_event_json(e, last_seen(e)) for e in mine[:MAX_EVENTS]]


def _event_json(event: Obj, last: datetime) -> Json:
    first = _moment(event.get("firstTimestamp") or event.get("eventTime"))
    return {
        "type": event.get("type") or "Normal",
        "reason": event.get("reason") or "",
        "message": event.get("message") or "",
        "count": int(event.get("count") or 1),
        "firstTime": _rfc3339(last if first == _NEVER else first),
        "lastTime": _rfc3339(last),
    }


_NEVER = datetime.min.replace(tzinfo=UTC)


def _moment(value: object) -> datetime:
    """A Kubernetes timestamp (``...Z`` or with an offset) as an aware datetime; unknown or
    unreadable ones sort last."""
    if not isinstance(value, str) or not value:
        return _NEVER
    try:
        found = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return _NEVER
    return found if found.tzinfo else found.replace(tzinfo=UTC)


def _rfc3339(moment: datetime) -> str | None:
    if moment == _NEVER:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
