"""Helpers shared by the planners: references, owner references, pod facts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hearth import names
from hearth.api import API_VERSION

from ..constants import LABEL_MANAGED_BY, LABEL_PART_OF, MANAGED_BY

Obj = dict[str, Any]


@dataclass(frozen=True)
class Ref:
    """A resolved reference to a namespaced Hearth object."""

    namespace: str
    name: str

    def full_name(self, collection: str) -> str:
        return names.format_name(self.namespace, collection, self.name)


def resolve_ref(value: str, collection: str, own_namespace: str) -> Ref:
    """A bare ID means "in my account"; a full name may point at another account."""
    if value.startswith("accounts/"):
        parsed = names.parse(value)
        if parsed.collection != collection:
            raise ValueError(f"{value!r} is not a {collection} name")
        return Ref(parsed.account, parsed.id)
    names.validate_id(value)
    return Ref(own_namespace, value)


def owner_reference(owner: Obj, *, controller: bool = True) -> Obj:
    metadata = owner["metadata"]
    return {
        "apiVersion": owner.get("apiVersion", API_VERSION),
        "kind": owner["kind"],
        "name": metadata["name"],
        "uid": metadata["uid"],
        "controller": controller,
        "blockOwnerDeletion": True,
    }


def managed_labels(**extra: str) -> dict[str, str]:
    return {LABEL_MANAGED_BY: MANAGED_BY, LABEL_PART_OF: "hearth", **extra}


def is_terminating(obj: Obj) -> bool:
    return bool(obj.get("metadata", {}).get("deletionTimestamp"))


def pod_ready(pod: Obj) -> bool:
    if is_terminating(pod) or pod.get("status", {}).get("phase") != "Running":
        return False
    conditions = pod.get("status", {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def pod_failed(pod: Obj) -> bool:
    return pod.get("status", {}).get("phase") in ("Failed", "Succeeded")


def pod_scheduled(pod: Obj) -> bool:
    conditions = pod.get("status", {}).get("conditions") or []
    if any(c.get("type") == "PodScheduled" and c.get("status") == "True" for c in conditions):
        return True
    return pod.get("status", {}).get("phase") in ("Running", "Succeeded", "Failed")


def pod_failure_reason(pod: Obj) -> str | None:
    """Why a pod's server is not running, from the container statuses, if it says."""
    for status in pod.get("status", {}).get("containerStatuses") or []:
        state = status.get("state") or {}
        last = status.get("lastState") or {}
        for source in (state, last):
            terminated = source.get("terminated")
            if terminated and terminated.get("exitCode", 0) != 0:
                reason = terminated.get("reason") or "Error"
                message = terminated.get("message") or ""
                code = terminated.get("exitCode")
                return f"{reason} (exit code {code}){': ' + message if message else ''}"
        waiting = state.get("waiting")
        if waiting and waiting.get("reason") in ("CrashLoopBackOff", "ImagePullBackOff"):
            return f"{waiting['reason']}: {waiting.get('message', '')}".rstrip(": ")
    return None


def restart_count(pod: Obj) -> int:
    return sum(
        s.get("restartCount", 0) for s in pod.get("status", {}).get("containerStatuses") or []
    )


def creation_key(obj: Obj) -> tuple[str, str]:
    metadata = obj.get("metadata", {})
    return (metadata.get("creationTimestamp") or "", metadata.get("name") or "")
