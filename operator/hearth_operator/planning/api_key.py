"""ApiKey -> its Secret, the Role and RoleBinding that let its user read it, and status.

The key is issued once. Where it comes from, in order:

1. ``status.keyHash`` is set: the key was issued; nothing is generated again, ever.
2. No hash, but this ApiKey's Secret exists (the operator stopped between creating the
   Secret and writing the status): the hash is rebuilt from the Secret's key.
3. Neither: a new key (``hearth.api_keys.generate_key``) and a new Secret.

The Secret is created before the status that points at it is written, so a crash between
the two writes lands in case 2, never in a second key.

An ApiKey annotated ``hearth.dev/key-issuer: gateway`` was issued by the REST control
plane, which returned the key once and writes its hash into status itself: the operator
issues nothing for it, creates no Secret and no Role, and reports CREATING until the hash
is there.

The planner is pure: the random key and salt come from the functions passed in.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from hearth import api_keys
from hearth.api import ApiKeySpec, ApiKeyState

from ..conditions import Cond, format_time, set_conditions
from ..constants import (
    ANNOTATION_KEY_ISSUER,
    KEY_ISSUER_GATEWAY,
    LABEL_API_KEY,
    LABEL_USER,
    USER_API_KEY_SECRET_KEY,
    user_api_key_secret_name,
)
from .common import Obj, is_terminating, managed_labels, owner_reference
from .user import plan_user

RBAC = "rbac.authorization.k8s.io"


@dataclass(frozen=True)
class Issued:
    """What status records about a key: never the plaintext."""

    prefix: str
    salt: str
    key_hash: str


@dataclass(frozen=True)
class ApiKeyPlan:
    status: dict[str, Any]
    #: The ApiKey's whole new ownerReferences list; None when it already has the User's.
    owner_references: list[Obj] | None = None
    #: A Secret to create (holding a key generated now); None when none is to be created.
    secret: Obj | None = None
    #: The Role and RoleBinding that let the key's user read its Secret.
    access: tuple[Obj, ...] = field(default_factory=tuple)
    #: Whether a new key was generated in this plan (for the event).
    generated: bool = False


def key_from_secret(secret: Obj | None) -> str | None:
    """The plaintext in an ApiKey's Secret; None when it has none or it is not base64."""
    encoded = ((secret or {}).get("data") or {}).get(USER_API_KEY_SECRET_KEY)
    if not isinstance(encoded, str) or not encoded:
        return None
    try:
        return base64.b64decode(encoded, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None


def owned_by(obj: Obj, owner: Obj) -> bool:
    uid = owner["metadata"].get("uid")
    return any(ref.get("uid") == uid for ref in obj["metadata"].get("ownerReferences") or [])


def issued_from_status(api_key: Obj) -> Issued | None:
    status = api_key.get("status") or {}
    prefix, salt, key_hash = status.get("prefix"), status.get("salt"), status.get("keyHash")
    if prefix and salt and key_hash:
        return Issued(prefix=prefix, salt=salt, key_hash=key_hash)
    return None


def issue(key: str, salt: str) -> Issued:
    return Issued(prefix=api_keys.key_prefix(key), salt=salt, key_hash=api_keys.hash_key(key, salt))


def secret_for(api_key: Obj, user: str, key: str) -> Obj:
    metadata = api_key["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": user_api_key_secret_name(metadata["name"]),
            "namespace": metadata["namespace"],
            "labels": managed_labels(**{LABEL_API_KEY: metadata["name"], LABEL_USER: user}),
            "ownerReferences": [owner_reference(api_key)],
        },
        "data": {USER_API_KEY_SECRET_KEY: base64.b64encode(key.encode()).decode("ascii")},
    }


def secret_access(api_key: Obj, user: Obj) -> tuple[Obj, Obj]:
    """A Role that may get exactly this Secret, bound to the user's subject.

    The subject is the one the User's own RoleBinding binds (a person's email as a
    Kubernetes User, or the service account's ServiceAccount). Raises ValueError when the
    User cannot be bound (a person without an email).
    """
    metadata = api_key["metadata"]
    name, namespace = user_api_key_secret_name(metadata["name"]), metadata["namespace"]
    subjects = plan_user(user).role_binding["subjects"]
    user_id = user["metadata"]["name"]
    common = {
        "name": name,
        "namespace": namespace,
        "labels": managed_labels(**{LABEL_API_KEY: metadata["name"], LABEL_USER: user_id}),
        "ownerReferences": [owner_reference(api_key)],
    }
    role = {
        "apiVersion": f"{RBAC}/v1",
        "kind": "Role",
        "metadata": dict(common),
        "rules": [
            {"apiGroups": [""], "resources": ["secrets"], "resourceNames": [name], "verbs": ["get"]}
        ],
    }
    binding = {
        "apiVersion": f"{RBAC}/v1",
        "kind": "RoleBinding",
        "metadata": dict(common),
        "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": name},
        "subjects": subjects,
    }
    return role, binding


def owner_references_with_user(api_key: Obj, user: Obj) -> list[Obj] | None:
    """The ApiKey's ownerReferences with its User (and no stale User) in them; None if so."""
    existing = api_key["metadata"].get("ownerReferences") or []
    wanted = owner_reference(user, controller=False)
    if any(ref.get("uid") == wanted["uid"] for ref in existing):
        return None
    kept = [ref for ref in existing if ref.get("kind") != "User"]
    return [*kept, wanted]


def expire_time(spec: ApiKeySpec) -> datetime | None:
    moment = spec.expire_time
    if moment is not None and moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment


def _status(
    api_key: Obj,
    state: ApiKeyState,
    cond: Cond,
    now: datetime,
    issued: Issued | None = None,
    secret_name: str | None = None,
) -> dict[str, Any]:
    generation = api_key["metadata"].get("generation")
    previous = api_key.get("status") or {}
    status: dict[str, Any] = {
        "state": state.value,
        "observedGeneration": generation,
        "message": cond.message,
        "conditions": set_conditions(
            previous.get("conditions"), [cond], generation=generation, now=now
        ),
    }
    if issued is not None:
        status.update(prefix=issued.prefix, salt=issued.salt, keyHash=issued.key_hash)
    if secret_name is not None:
        status["secretName"] = secret_name
    return status


def _failed(api_key: Obj, reason: str, message: str, now: datetime) -> ApiKeyPlan:
    cond = Cond("Ready", False, reason, message)
    return ApiKeyPlan(status=_status(api_key, ApiKeyState.FAILED, cond, now))


def plan_api_key(
    api_key: Obj,
    user: Obj | None,
    secret: Obj | None,
    now: datetime,
    *,
    new_key: Callable[[], str] = api_keys.generate_key,
    new_salt: Callable[[], str] = api_keys.new_salt,
) -> ApiKeyPlan:
    """What the ApiKey should have, given its User (None: absent) and its Secret (None:
    absent). ``new_key`` and ``new_salt`` are called only when a key must be issued."""
    metadata = api_key["metadata"]
    namespace = metadata["namespace"]
    try:
        spec = ApiKeySpec.model_validate(api_key.get("spec") or {})
    except ValidationError as error:  # the CRD's schema makes this unreachable via the API
        return _failed(api_key, "InvalidSpec", f"invalid spec: {error}", now)
    if user is None or is_terminating(user):
        gone = "does not exist" if user is None else "is being deleted"
        return _failed(
            api_key,
            "UserNotFound",
            f"spec.user: user {spec.user!r} {gone} in account {namespace!r}; "
            "a key is issued only for an existing user",
            now,
        )
    if issued_by_gateway(api_key):
        return _plan_gateway_issued(api_key, spec, user, issued_from_status(api_key), now)
    secret_name = user_api_key_secret_name(metadata["name"])
    if secret is not None and not owned_by(secret, api_key):
        return _failed(
            api_key,
            "SecretConflict",
            f"Secret {secret_name!r} exists and does not belong to this ApiKey (a key of the "
            "same name deleted moments ago?); it is retried once that Secret is gone",
            now,
        )
    try:
        access = secret_access(api_key, user)
    except ValueError as error:
        return _failed(api_key, "UserNotBindable", f"user {spec.user!r}: {error}", now)

    issued = issued_from_status(api_key)
    to_create: Obj | None = None
    secret_note = ""
    if issued is None:
        recovered = key_from_secret(secret)
        if recovered is not None:  # the Secret was written, the status was not
            issued = issue(recovered, new_salt())
        elif secret is not None:
            return _failed(
                api_key,
                "SecretUnreadable",
                f"Secret {secret_name!r} holds no key under data.{USER_API_KEY_SECRET_KEY}; "
                "delete the Secret (or the ApiKey) to issue a new key",
                now,
            )
        else:
            key = new_key()
            issued = issue(key, new_salt())
            to_create = secret_for(api_key, spec.user, key)
    elif secret is None:
        secret_note = (
            f"; its Secret {secret_name!r} was deleted, so the key can no longer be read "
            "(delete and recreate the ApiKey for a new one)"
        )

    state, cond = _validity(
        spec, issued, now, f"its user can read it from Secret {secret_name!r}{secret_note}"
    )
    return ApiKeyPlan(
        status=_status(api_key, state, cond, now, issued, secret_name),
        owner_references=owner_references_with_user(api_key, user),
        secret=to_create,
        access=access,
        generated=to_create is not None,
    )


def issued_by_gateway(api_key: Obj) -> bool:
    annotations = api_key["metadata"].get("annotations") or {}
    return annotations.get(ANNOTATION_KEY_ISSUER) == KEY_ISSUER_GATEWAY


def _validity(
    spec: ApiKeySpec, issued: Issued, now: datetime, where: str
) -> tuple[ApiKeyState, Cond]:
    expires = expire_time(spec)
    if expires is not None and expires <= now:
        return ApiKeyState.EXPIRED, Cond(
            "Ready", False, "Expired", f"the key expired at {format_time(expires)}"
        )
    until = f" until {format_time(expires)}" if expires is not None else ""
    return ApiKeyState.READY, Cond(
        "Ready",
        True,
        "Issued",
        f"key {issued.prefix}... of user {spec.user!r} is valid{until}; {where}",
    )


def _plan_gateway_issued(
    api_key: Obj, spec: ApiKeySpec, user: Obj, issued: Issued | None, now: datetime
) -> ApiKeyPlan:
    """A key the REST control plane generated: it was shown once to its creator and only
    its hash is kept, so there is no Secret and no Role to read one."""
    owners = owner_references_with_user(api_key, user)
    if issued is None:  # the gateway writes the hash right after creating the object
        cond = Cond(
            "Ready",
            False,
            "AwaitingHash",
            "issued through the REST API; waiting for the gateway to record the key's hash",
        )
        return ApiKeyPlan(
            status=_status(api_key, ApiKeyState.CREATING, cond, now), owner_references=owners
        )
    state, cond = _validity(
        spec, issued, now, "issued through the REST API and shown once; no Secret holds it"
    )
    return ApiKeyPlan(status=_status(api_key, state, cond, now, issued), owner_references=owners)
