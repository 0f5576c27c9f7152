"""ApiKey <-> ``accounts/<a>/users/<u>/apiKeys`` entries (``keyId`` is the object's name).

A key created through the API is generated here and returned once. The ApiKey object is
created with the annotation ``hearth.dev/key-issuer: gateway``, then its status gets the
prefix, salt and hash. The annotation tells the operator that the gateway issues this key:
it generates none and creates no Secret, so the plaintext exists only in the response.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from hearth import api_keys
from hearth_operator.constants import ANNOTATION_KEY_ISSUER, KEY_ISSUER_GATEWAY
from hearth_operator.planning.api_key import plan_api_key

from .common import (
    Directory,
    Json,
    Obj,
    ResourceKind,
    metadata,
    new_object,
    random_id,
    spec_from_body,
)


def to_json(obj: Obj, directory: Directory) -> Json:
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    out: Json = {
        "keyId": metadata(obj).get("name"),
        "displayName": spec.get("displayName") or "default",
        # Hearth keeps only a salted hash: it does not know the plaintext.
        "secure": True,
        "state": status.get("state") or "STATE_UNSPECIFIED",
    }
    if status.get("prefix"):
        out["prefix"] = status["prefix"]
    email = directory.who(spec.get("user"))
    if email:
        out["email"] = email
    if metadata(obj).get("creationTimestamp"):
        out["createTime"] = metadata(obj)["creationTimestamp"]
    if spec.get("expireTime"):
        out["expireTime"] = spec["expireTime"]
    return out


def new_key_id() -> str:
    return random_id(12, prefix="key-")


def create(account: str, user_id: str, key_id: str, body: Mapping[str, Any], creator: str) -> Obj:
    spec = spec_from_body(
        body, allowed=("displayName", "expireTime"), where="apiKey", ignored=API_KEY_OUTPUT
    )
    obj = new_object("ApiKey", key_id, account, {"user": user_id, **spec}, creator)
    obj["metadata"]["annotations"][ANNOTATION_KEY_ISSUER] = KEY_ISSUER_GATEWAY
    return obj


def issued_status(api_key: Obj, user: Obj, key: str, salt: str, now: datetime) -> Json:
    """The status that records ``key`` as issued (never the plaintext): the one the
    operator's planner derives for a gateway-issued key holding this hash."""
    issued = {
        "prefix": api_keys.key_prefix(key),
        "salt": salt,
        "keyHash": api_keys.hash_key(key, salt),
    }
    plan = plan_api_key({**api_key, "status": issued}, user, None, now)
    return {**plan.status, **issued}


def holds(obj: Obj, key: str) -> bool:
    status = obj.get("status") or {}
    salt, key_hash = status.get("salt"), status.get("keyHash")
    return bool(salt and key_hash) and api_keys.verify_key(key, str(salt), str(key_hash))


API_KEY_OUTPUT = frozenset({"keyId", "key", "prefix", "email", "secure"})

API_KEYS = ResourceKind(
    kind="ApiKey",
    plural="apikeys",
    collection="apiKeys",
    list_key="apiKeys",
    to_json=to_json,
    fields=frozenset({"keyId", "displayName", "secure", "state", "prefix", "email"})
    | frozenset({"createTime", "expireTime"}),
    filterable=("state", "displayName", "prefix"),
)
