"""The scale subresource of custom resources, as `autoscaling/v1 Scale`.

A CRD's `subresources.scale` names where the replicas live (`specReplicasPath`,
`statusReplicasPath`) and where a label selector string is (`labelSelectorPath`).
Reading builds a Scale from those paths; writing validates the Scale (including its
resourceVersion as a precondition) and stores `spec.replicas` at `specReplicasPath`,
which is a spec change like any other (the generation moves).
"""

from __future__ import annotations

import copy
from typing import Any

from hearth.local.emulator.errors import bad_request, conflict, invalid
from hearth.local.emulator.resources import ResourceType
from hearth.local.emulator.store import Obj, Store


def get_path(obj: Any, path: str) -> Any:
    for key in path.strip(".").split("."):
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def set_path(obj: dict[str, Any], path: str, value: Any) -> None:
    keys = path.strip(".").split(".")
    for key in keys[:-1]:
        obj = obj.setdefault(key, {})
    obj[keys[-1]] = value


def scale_of(rtype: ResourceType, obj: Obj) -> dict[str, Any]:
    assert rtype.scale is not None
    meta = obj["metadata"]
    status: dict[str, Any] = {"replicas": get_path(obj, rtype.scale.status_replicas_path) or 0}
    if rtype.scale.label_selector_path:
        selector = get_path(obj, rtype.scale.label_selector_path)
        if selector is not None:
            status["selector"] = selector
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            k: meta[k]
            for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if k in meta
        },
        "spec": {"replicas": get_path(obj, rtype.scale.spec_replicas_path) or 0},
        "status": status,
    }


def write_scale(store: Store, rtype: ResourceType, obj: Obj, desired: Any) -> dict[str, Any]:
    assert rtype.scale is not None
    name = obj["metadata"]["name"]
    if not isinstance(desired, dict):
        raise bad_request("the body of the request must be a Scale object")
    sent_rv = (desired.get("metadata") or {}).get("resourceVersion")
    if sent_rv and sent_rv != obj["metadata"]["resourceVersion"]:
        raise conflict(rtype.plural, name, rtype.group)
    replicas = (desired.get("spec") or {}).get("replicas")
    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
        raise invalid(
            "Scale",
            name,
            [("spec.replicas", f"Invalid value: {replicas!r}: must be greater than or equal to 0")],
            group="autoscaling",
        )
    new = copy.deepcopy(obj)
    set_path(new, rtype.scale.spec_replicas_path, replicas)
    return scale_of(rtype, store.commit(rtype, obj, new))
