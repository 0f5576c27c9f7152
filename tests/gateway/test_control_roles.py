"""The control plane's role table (hearth.roles) per role and verb, with the rule named."""

from __future__ import annotations

import pytest

from hearth_gateway.auth import Principal
from hearth_gateway.control.authz import (
    Action,
    authorize_api_keys,
    authorize_resource,
    authorize_users,
)
from hearth_gateway.control.errors import ApiError

ROLES = ("admin", "user", "contributor", "inference-user")


def who(role: str, user: str = "me", account: str = "acme") -> Principal:
    return Principal(account=account, user=user, key_id="k", role=role)


def allowed(call) -> bool | str:
    try:
        grant = call()
    except ApiError as error:
        assert error.status == 403 and "permission denied" in error.message
        return False
    return True if grant.impersonate else "as gateway"


# (action, owner) -> expected per role in ROLES order
RESOURCE_TABLE = {
    (Action.READ, None): (True, True, True, True),
    (Action.CREATE, None): (True, True, True, False),
    (Action.UPDATE, "me"): (True, True, "as gateway", False),
    (Action.DELETE, "me"): (True, True, "as gateway", False),
    (Action.UPDATE, "other"): (True, True, False, False),
    (Action.DELETE, "other"): (True, True, False, False),
    (Action.UPDATE, None): (True, True, False, False),
}


@pytest.mark.parametrize(("action", "owner"), list(RESOURCE_TABLE))
def test_resources_follow_the_fireworks_table(action: Action, owner: str | None) -> None:
    got = tuple(
        allowed(lambda r=role: authorize_resource(who(r), "acme", action, owner)) for role in ROLES
    )
    assert got == RESOURCE_TABLE[(action, owner)]


def test_a_contributor_editing_someone_elses_deployment_is_told_the_rule() -> None:
    with pytest.raises(ApiError) as error:
        authorize_resource(who("contributor"), "acme", Action.UPDATE, "dan")
    assert error.value.status == 403
    assert "only resources it created (createdBy)" in error.value.message
    assert "'dan'" in error.value.message


def test_only_admins_manage_users_everyone_views_them() -> None:
    for action in (Action.CREATE, Action.UPDATE, Action.DELETE):
        got = tuple(
            allowed(lambda r=role, a=action: authorize_users(who(r), "acme", a)) for role in ROLES
        )
        assert got == (True, False, False, False), action
    got = tuple(
        allowed(lambda r=role: authorize_users(who(r), "acme", Action.READ)) for role in ROLES
    )
    assert got == (True, True, True, True)


def test_everyone_manages_own_keys_admins_everyones() -> None:
    own = tuple(
        allowed(lambda r=role: authorize_api_keys(who(r), "acme", "me", Action.CREATE))
        for role in ROLES
    )
    # RBAC lets only admins write ApiKeys, so others' own keys are written by the gateway.
    assert own == (True, "as gateway", "as gateway", "as gateway")
    others = tuple(
        allowed(lambda r=role: authorize_api_keys(who(r), "acme", "dan", Action.DELETE))
        for role in ROLES
    )
    assert others == (True, False, False, False)
    listing = tuple(
        allowed(lambda r=role: authorize_api_keys(who(r), "acme", "me", Action.READ))
        for role in ROLES
    )
    assert listing == (True, True, True, True)


def test_another_account_is_403_for_every_role() -> None:
    for role in ROLES:
        with pytest.raises(ApiError, match="may not act in account 'beta'"):
            authorize_resource(who(role), "beta", Action.READ)


def test_an_unknown_role_may_do_nothing() -> None:
    assert allowed(lambda: authorize_resource(who("root"), "acme", Action.READ)) is False
