"""API-key authentication, role and suspension checks (pure, against a cluster state)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from hearth_gateway.auth import AuthError, authenticate, authorize, key_from_headers
from hearth_gateway.cluster.state import ClusterState
from tests.gateway import factories as f

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def state_with(*objects, suspend: str | None = None) -> ClusterState:
    spec = {"suspendState": suspend} if suspend else {}
    return ClusterState.of([f.account("acme", **spec), *objects])


def test_a_valid_key_carries_its_user_and_role() -> None:
    key_obj, key = f.api_key("acme", "k1", "ann")
    state = state_with(f.user("acme", "ann", role="inference-user"), key_obj)
    principal = authorize(key, state, NOW)
    assert (principal.account, principal.user, principal.key_id, principal.role) == (
        "acme",
        "ann",
        "k1",
        "inference-user",
    )


@pytest.mark.parametrize(
    "case", ["wrong-secret", "unknown-prefix", "missing", "failed", "deleted-user", "no-account"]
)
def test_refused_keys_are_401(case: str) -> None:
    key_obj, key = f.api_key("acme", "k1", "ann", state="FAILED" if case == "failed" else "READY")
    objects = [key_obj]
    if case != "deleted-user":
        objects.append(f.user("acme", "ann"))
    state = ClusterState.of(objects) if case == "no-account" else state_with(*objects)
    sent = {
        "wrong-secret": key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB"),
        "unknown-prefix": "hk_" + "Z" * 43,
        "missing": None,
    }.get(case, key)
    with pytest.raises(AuthError) as caught:
        authenticate(sent, state, NOW)
    assert caught.value.status == 401


def test_an_expired_key_is_401_and_says_so() -> None:
    key_obj, key = f.api_key("acme", "k1", "ann", expire_time="2026-05-31T23:59:59Z")
    state = state_with(f.user("acme", "ann"), key_obj)
    with pytest.raises(AuthError) as caught:
        authenticate(key, state, NOW)
    assert caught.value.status == 401 and "expired" in caught.value.message
    # Before the expiry it works.
    assert authenticate(key, state, datetime(2026, 5, 1, tzinfo=UTC)).key_id == "k1"


def test_a_suspended_account_is_412_and_an_unknown_role_403() -> None:
    key_obj, key = f.api_key("acme", "k1", "ann")
    suspended = state_with(f.user("acme", "ann"), key_obj, suspend="CREDIT_DEPLETED")
    with pytest.raises(AuthError) as caught:
        authorize(key, suspended, NOW)
    assert caught.value.status == 412 and "CREDIT_DEPLETED" in caught.value.message
    odd = state_with(f.user("acme", "ann", role="owner"), key_obj)
    with pytest.raises(AuthError) as caught:
        authorize(key, odd, NOW)
    assert caught.value.status == 403


def test_keys_come_from_bearer_or_x_api_key() -> None:
    assert key_from_headers({"authorization": "Bearer hk_abc"}) == "hk_abc"
    assert key_from_headers({"authorization": "bearer  hk_abc "}) == "hk_abc"
    assert key_from_headers({"x-api-key": "hk_xyz"}) == "hk_xyz"
    assert key_from_headers({"authorization": "Basic Zm9v"}) is None
    assert key_from_headers({}) is None
