"""What every resource's translation shares (pure): names, times, state, status, fields.

A Hearth object is a Kubernetes custom resource whose spec fields carry Fireworks' own
camelCase names, so most of a translation is copying fields; what differs per resource
(IDs, renamed fields, output-only status fields) lives in that resource's module.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hearth.api import API_VERSION
from hearth.names import format_name

from .constants import ANNOTATION_CREATED_BY
from .errors import invalid

Obj = dict[str, Any]
Json = dict[str, Any]

#: Output-only fields every resource has; a body may send them back (they are ignored).
OUTPUT_FIELDS = frozenset({"name", "createTime", "updateTime", "state", "status", "createdBy"})

#: How a state maps to a google.rpc code in ``status.code``.
_FAILED_STATES = frozenset({"FAILED", "EXPIRED", "JOB_STATE_FAILED"})


@dataclass(frozen=True)
class Directory:
    """What a translation may need to know about users: a user ID's email, if any."""

    emails: Mapping[str, str] = field(default_factory=dict)

    def who(self, user_id: str | None) -> str | None:
        if not user_id:
            return None
        return self.emails.get(user_id, user_id)


def flag(query: Mapping[str, str], name: str) -> bool:
    """A boolean query parameter (absent: false); 400 naming it when it is not one."""
    value = (query.get(name) or "").lower()
    if value in ("", "false", "0"):
        return False
    if value in ("true", "1"):
        return True
    raise invalid(f"{name}: expected true or false, got {query.get(name)!r}")


def metadata(obj: Obj) -> Obj:
    meta: Obj = obj.get("metadata") or {}
    return meta


def account_of(obj: Obj) -> str:
    return str(metadata(obj).get("namespace") or metadata(obj).get("name") or "")


def created_by(obj: Obj) -> str | None:
    value = (metadata(obj).get("annotations") or {}).get(ANNOTATION_CREATED_BY)
    return str(value) if value else None


def update_time(obj: Obj) -> str | None:
    """The latest write Kubernetes recorded (managed fields, conditions), else creation."""
    times = [
        str(entry["time"])
        for entry in metadata(obj).get("managedFields") or []
        if isinstance(entry, dict) and entry.get("time")
    ]
    times += [
        str(cond["lastTransitionTime"])
        for cond in (obj.get("status") or {}).get("conditions") or []
        if isinstance(cond, dict) and cond.get("lastTransitionTime")
    ]
    created = metadata(obj).get("creationTimestamp")
    if created:
        times.append(str(created))
    return max(times) if times else None


def status_of(obj: Obj) -> Json:
    status = obj.get("status") or {}
    state = status.get("state")
    code = "FAILED_PRECONDITION" if state in _FAILED_STATES else "OK"
    result: Json = {"code": code}
    if status.get("message"):
        result["message"] = status["message"]
    return result


def base_json(obj: Obj, collection: str, directory: Directory) -> Json:
    """name, times, state, status and createdBy of any Hearth object."""
    meta = metadata(obj)
    status = obj.get("status") or {}
    out: Json = {"name": format_name(account_of(obj), collection, str(meta.get("name") or ""))}
    if meta.get("creationTimestamp"):
        out["createTime"] = meta["creationTimestamp"]
    updated = update_time(obj)
    if updated:
        out["updateTime"] = updated
    out["state"] = status.get("state") or "STATE_UNSPECIFIED"
    out["status"] = status_of(obj)
    creator = directory.who(created_by(obj))
    if creator:
        out["createdBy"] = creator
    return out


def copy_fields(source: Mapping[str, Any], names: Iterable[str]) -> Json:
    return {name: source[name] for name in names if source.get(name) is not None}


def spec_from_body(
    body: Mapping[str, Any],
    *,
    allowed: Iterable[str],
    where: str,
    ignored: Iterable[str] = (),
    renamed: Mapping[str, str] | None = None,
) -> Json:
    """The spec fields of a Fireworks body; 400 naming any field Hearth does not take.

    Output-only fields (and ``ignored`` ones) are dropped, ``renamed`` maps a Fireworks
    field to the spec field of another name; None values mean "not set".
    """
    allowed_set, skip = set(allowed), OUTPUT_FIELDS | set(ignored)
    renames = dict(renamed or {})
    spec: Json = {}
    for key, value in body.items():
        if key in skip or value is None:
            continue
        target = renames.get(key, key)
        if target not in allowed_set:
            raise invalid(
                f"{where}.{key}: not supported by Hearth; supported fields: "
                + ", ".join(sorted(allowed_set | set(renames)))
            )
        spec[target] = value
    return spec


def new_object(kind: str, name: str, namespace: str | None, spec: Json, creator: str) -> Obj:
    meta: Obj = {"name": name, "annotations": {ANNOTATION_CREATED_BY: creator}}
    if namespace is not None:
        meta["namespace"] = namespace
    return {"apiVersion": API_VERSION, "kind": kind, "metadata": meta, "spec": spec}


_ALPHABET = string.ascii_lowercase + string.digits


def random_id(length: int = 8, prefix: str = "") -> str:
    """A random resource ID: lowercase letters and digits, starting with a letter."""
    first = secrets.choice(string.ascii_lowercase) if not prefix else ""
    rest = "".join(secrets.choice(_ALPHABET) for _ in range(length - len(first)))
    return f"{prefix}{first}{rest}"


def short_id(value: str, collection: str) -> str:
    """``accounts/<a>/<collection>/<id>`` -> ``<id>``; a bare ID stays as it is."""
    prefix_parts = value.split("/")
    if len(prefix_parts) == 4 and prefix_parts[0] == "accounts" and prefix_parts[2] == collection:
        return prefix_parts[3]
    return value


def full_reference(value: str | None, collection: str, account: str) -> str | None:
    """A reference as the CR holds it (ID or full name) -> the full Fireworks name."""
    if not value:
        return None
    if value.startswith("accounts/"):
        return value
    return format_name(account, collection, value)


Translator = Callable[[Obj, Directory], Json]


@dataclass(frozen=True)
class ResourceKind:
    """One Fireworks collection backed by one Hearth kind."""

    kind: str
    #: The Kubernetes plural (the URL path segment).
    plural: str
    #: The Fireworks collection in names (``accounts/<a>/<collection>/<id>``).
    collection: str
    #: The key of the items in a list answer.
    list_key: str
    to_json: Translator
    #: Top-level JSON fields (for readMask).
    fields: frozenset[str]
    #: Fields a filter and orderBy may use.
    filterable: tuple[str, ...] = ("state",)
    #: Fields an update may change (JSON names).
    updatable: frozenset[str] = frozenset()
    #: JSON name -> spec name where they differ.
    renamed: Mapping[str, str] = field(default_factory=dict)
    #: Order without orderBy.
    default_order: tuple[tuple[str, bool], ...] = ()


def updated_spec(
    spec: Json,
    body: Mapping[str, Any],
    mask: list[str] | None,
    resource: ResourceKind,
) -> Json:
    """``spec`` with the masked fields (no mask: the fields the body sets) from ``body``.

    Without a mask the fields present in the body are the mask, as gRPC-gateway derives it;
    a masked field absent from the body is cleared (back to its default).
    """
    paths = mask if mask is not None else [k for k in body if k not in OUTPUT_FIELDS]
    result = dict(spec)
    for path in paths:
        if path in OUTPUT_FIELDS and mask is None:
            continue
        if path not in resource.updatable:
            raise invalid(
                f"updateMask: field {path!r} cannot be updated; updatable: "
                + ", ".join(sorted(resource.updatable))
            )
        target = resource.renamed.get(path, path)
        value = body.get(path)
        if value is None:
            result.pop(target, None)
        else:
            result[target] = value
    return result
