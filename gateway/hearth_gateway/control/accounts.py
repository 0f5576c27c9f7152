"""Account <-> ``accounts/<a>`` (read only through the API)."""

from __future__ import annotations

from .common import Directory, Json, Obj, ResourceKind, base_json, copy_fields


def to_json(obj: Obj, directory: Directory) -> Json:
    spec = obj.get("spec") or {}
    out = base_json(obj, "accounts", directory)
    out["name"] = f"accounts/{obj['metadata']['name']}"
    out.update(copy_fields(spec, ("displayName", "email", "description")))
    out["accountType"] = "ACCOUNT_TYPE_UNSPECIFIED"
    out["suspendState"] = spec.get("suspendState") or "UNSUSPENDED"
    return out


ACCOUNTS = ResourceKind(
    kind="Account",
    plural="accounts",
    collection="accounts",
    list_key="accounts",
    to_json=to_json,
    fields=frozenset(
        {"name", "createTime", "updateTime", "state", "status", "displayName", "email"}
        | {"description", "accountType", "suspendState"}
    ),
    filterable=("state", "suspendState", "displayName", "email"),
)
