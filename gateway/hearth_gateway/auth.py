"""API-key authentication and the checks before inference (pure).

A key arrives as ``Authorization: Bearer <key>`` (OpenAI and Fireworks SDKs) or
``x-api-key: <key>`` (Anthropic SDKs). Its first characters (``hearth.api_keys.key_prefix``)
find the ApiKey objects in the cache, and ``verify_key`` compares the salted hash in
constant time. The key is refused (401) when it is unknown, revoked (deleted), failed,
expired, or when its user or account is gone; the role is the user's current one, so a
role change applies at the next request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hearth.api_keys import key_prefix, verify_key
from hearth.roles import Permission, allows
from hearth_operator.planning.common import is_terminating

from .cluster.state import ClusterState

Obj = dict[str, Any]

INVALID_KEY_MESSAGE = "The API key you provided is invalid."
MISSING_KEY_MESSAGE = (
    "No API key provided: send it as 'Authorization: Bearer <key>' (or 'x-api-key: <key>')."
)


class AuthError(Exception):
    """401 (authentication), 403 (permission) or 412 (account suspended)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's account, user, key ID and the user's role."""

    account: str
    user: str
    key_id: str
    role: str


def key_from_headers(headers: Mapping[str, str]) -> str | None:
    """The API key from ``Authorization: Bearer`` or ``x-api-key`` (headers lower-cased)."""
    authorization = headers.get("authorization")
    if authorization:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    api_key = headers.get("x-api-key")
    return api_key.strip() if api_key and api_key.strip() else None


def _expired(key: Obj, now: datetime) -> bool:
    expire = (key.get("spec") or {}).get("expireTime")
    if not expire:
        return False
    try:
        when = datetime.fromisoformat(str(expire).replace("Z", "+00:00"))
    except ValueError:
        return True  # an expiry we cannot read must not mean "never"
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when <= now


def _matches(candidate: Obj, key: str) -> bool:
    status = candidate.get("status") or {}
    salt, key_hash = status.get("salt"), status.get("keyHash")
    return bool(salt and key_hash) and verify_key(key, str(salt), str(key_hash))


def authenticate(key: str | None, state: ClusterState, now: datetime) -> Principal:
    """The caller behind ``key``, or :class:`AuthError` 401."""
    if not key:
        raise AuthError(401, MISSING_KEY_MESSAGE)
    for candidate in state.api_keys_with_prefix(key_prefix(key)):
        if not _matches(candidate, key):
            continue
        status = candidate.get("status") or {}
        if is_terminating(candidate) or status.get("state") in ("FAILED", "EXPIRED"):
            break
        if _expired(candidate, now):
            raise AuthError(401, "The API key you provided has expired.")
        namespace = candidate["metadata"]["namespace"]
        user_id = (candidate.get("spec") or {}).get("user") or ""
        user = state.user(namespace, user_id)
        account = state.account(namespace)
        if user is None or is_terminating(user) or account is None or is_terminating(account):
            break
        return Principal(
            account=namespace,
            user=user_id,
            key_id=candidate["metadata"]["name"],
            role=str((user.get("spec") or {}).get("role") or "user"),
        )
    raise AuthError(401, INVALID_KEY_MESSAGE)


def authorize_inference(principal: Principal, state: ClusterState) -> None:
    """403 when the role may not run inference; 412 when the account is suspended."""
    if not allows(principal.role, Permission.INFERENCE):
        raise AuthError(
            403, f"role {principal.role!r} of user {principal.user!r} may not run inference"
        )
    account = state.account(principal.account) or {}
    suspended = (account.get("spec") or {}).get("suspendState") or "UNSUSPENDED"
    if suspended != "UNSUSPENDED":
        raise AuthError(
            412,
            f"account {principal.account} is suspended ({suspended}); inference is refused "
            "until the account is unsuspended",
        )


def authorize(key: str | None, state: ClusterState, now: datetime | None = None) -> Principal:
    """Authenticate, then check the role and the account for inference."""
    principal = authenticate(key, state, now or datetime.now(UTC))
    authorize_inference(principal, state)
    return principal
