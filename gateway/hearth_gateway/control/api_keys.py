"""ApiKey <-> ``accounts/<a>/users/<u>/apiKeys`` entries (``keyId`` is the object's name).

A key created through the API is generated here and returned once. The ApiKey object is
created, then its status gets the prefix, salt and hash: the operator's planner issues a
key only while ``status.keyHash`` is empty (``plan_api_key`` case 1), so it adopts this
one. A reconcile that read the object before that status write may still issue its own
key; the gateway sees that as a different ``keyHash`` once the operator reports READY,
and deletes the object and tries again with a new key ID (see ``routes``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hearth import api_keys

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

#: Status written by the gateway until the operator has seen the key.
PENDING_STATE = "CREATING"


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
    return new_object("ApiKey", key_id, account, {"user": user_id, **spec}, creator)


def issued_status(key: str, salt: str) -> Json:
    """The status that records ``key`` as issued (never the plaintext)."""
    return {
        "state": PENDING_STATE,
        "prefix": api_keys.key_prefix(key),
        "salt": salt,
        "keyHash": api_keys.hash_key(key, salt),
        "message": "issued through the REST API; the plaintext was returned once to the caller",
    }


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
