"""User <-> ``accounts/<a>/users/<u>``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .common import (
    Directory,
    Json,
    Obj,
    ResourceKind,
    base_json,
    copy_fields,
    new_object,
    spec_from_body,
)
from .errors import invalid

SPEC_FIELDS = ("role", "email", "serviceAccount", "displayName")


def to_json(obj: Obj, directory: Directory) -> Json:
    spec = obj.get("spec") or {}
    out = base_json(obj, "users", directory)
    out.update(copy_fields(spec, SPEC_FIELDS))
    out.setdefault("role", "user")
    out.setdefault("serviceAccount", False)
    return out


def id_from_email(email: str) -> str:
    """Fireworks derives a user ID from the email when none is given."""
    local = email.split("@", 1)[0].lower()
    cleaned = re.sub(r"[^a-z0-9-]+", "-", local).strip("-")
    cleaned = re.sub(r"^[^a-z]+", "", cleaned)[:63].rstrip("-")
    if not cleaned:
        raise invalid(f"userId: cannot derive a user ID from email {email!r}; give userId")
    return cleaned


def create(account: str, user_id: str | None, body: Mapping[str, Any], creator: str) -> Obj:
    spec = spec_from_body(body, allowed=SPEC_FIELDS, where="user")
    if not user_id:
        email = spec.get("email")
        if not isinstance(email, str) or not email:
            raise invalid("userId: required for a user without an email (service accounts)")
        user_id = id_from_email(email)
    return new_object("User", user_id, account, spec, creator)


USERS = ResourceKind(
    kind="User",
    plural="users",
    collection="users",
    list_key="users",
    to_json=to_json,
    fields=frozenset({"name", "createTime", "updateTime", "state", "status", "createdBy"})
    | frozenset(SPEC_FIELDS),
    filterable=("state", "role", "email", "serviceAccount", "displayName"),
    updatable=frozenset({"role", "email", "displayName", "serviceAccount"}),
)
