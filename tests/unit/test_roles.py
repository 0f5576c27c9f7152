"""The Fireworks role table (reference fireworks.md 1.7) as hearth.roles encodes it."""

import itertools

import pytest

from hearth.api import Role
from hearth.roles import ROLE_PERMISSIONS, Permission, allows, permissions

P = Permission
# permission -> (inference-user, contributor, user, admin), straight from the Fireworks table.
TABLE = {
    P.INFERENCE: (True, True, True, True),
    P.VIEW: (True, True, True, True),
    P.CREATE: (False, True, True, True),
    P.EDIT_OWN: (False, True, True, True),
    P.EDIT_OTHERS: (False, False, True, True),
    P.MANAGE_OWN_KEYS: (True, True, True, True),
    P.MANAGE_OTHERS_KEYS: (False, False, False, True),
    P.MANAGE_USERS: (False, False, False, True),
}
ROLES = (Role.INFERENCE_USER, Role.CONTRIBUTOR, Role.USER, Role.ADMIN)


def test_table_covers_every_permission_and_role():
    assert set(TABLE) == set(Permission)
    assert set(ROLES) == set(Role) == set(ROLE_PERMISSIONS)


@pytest.mark.parametrize("permission", list(Permission))
@pytest.mark.parametrize("index", range(4))
def test_role_table(permission, index):
    role = ROLES[index]
    expected = TABLE[permission][index]
    assert allows(role, permission) is expected
    # The string form (User.spec.role as stored) answers the same.
    assert allows(role.value, permission) is expected


def test_inference_user_may_only_run_inference_view_and_own_keys():
    assert permissions("inference-user") == {P.INFERENCE, P.VIEW, P.MANAGE_OWN_KEYS}


def test_roles_are_nested():
    order = [permissions(r) for r in ROLES]
    assert all(a < b for a, b in itertools.pairwise(order))
    assert permissions(Role.ADMIN) == set(Permission)


@pytest.mark.parametrize("role", ["", "Admin", "root", "owner", " admin"])
def test_unknown_role_grants_nothing(role):
    assert permissions(role) == frozenset()
    assert not any(allows(role, p) for p in Permission)
