"""What each Fireworks role may do: the permission table of the Fireworks docs.

| Permission                                 | inference-user | contributor | user | admin |
| run inference on any deployment            |       yes      |     yes     | yes  |  yes  |
| view all resources, users, service accts   |       yes      |     yes     | yes  |  yes  |
| create resources                           |        -       |     yes     | yes  |  yes  |
| edit/delete own resources                  |        -       |     yes     | yes  |  yes  |
| edit/delete others' resources              |        -       |      -      | yes  |  yes  |
| create/delete own API keys                 |       yes      |     yes     | yes  |  yes  |
| service-account keys, others' keys         |        -       |      -      |  -   |  yes  |
| add/modify/remove users and roles          |        -       |      -      |  -   |  yes  |

The gateway authorises requests with :func:`allows`; the operator's ClusterRoles
(``hearth_operator.planning.roles``) express the Kubernetes side of the same table.
"""

from __future__ import annotations

import enum
from types import MappingProxyType

from hearth.api.user import Role


class Permission(enum.StrEnum):
    INFERENCE = "inference"
    VIEW = "view"
    CREATE = "create"
    EDIT_OWN = "edit-own"
    EDIT_OTHERS = "edit-others"
    MANAGE_OWN_KEYS = "manage-own-keys"
    #: Create service-account keys and delete other users' keys.
    MANAGE_OTHERS_KEYS = "manage-others-keys"
    #: Add, modify and remove users and roles; account settings.
    MANAGE_USERS = "manage-users"


_EVERYONE = frozenset({Permission.INFERENCE, Permission.VIEW, Permission.MANAGE_OWN_KEYS})
_CONTRIBUTOR = _EVERYONE | {Permission.CREATE, Permission.EDIT_OWN}
_USER = _CONTRIBUTOR | {Permission.EDIT_OTHERS}

#: Each role's permissions.
ROLE_PERMISSIONS: MappingProxyType[Role, frozenset[Permission]] = MappingProxyType(
    {
        Role.INFERENCE_USER: _EVERYONE,
        Role.CONTRIBUTOR: _CONTRIBUTOR,
        Role.USER: _USER,
        Role.ADMIN: frozenset(Permission),
    }
)


def permissions(role: Role | str) -> frozenset[Permission]:
    """The permissions of ``role``; none for a string that is not a role (fail closed)."""
    try:
        return ROLE_PERMISSIONS[Role(role)]
    except ValueError:
        return frozenset()


def allows(role: Role | str, permission: Permission) -> bool:
    """Whether ``role`` grants ``permission``. An unknown role grants nothing."""
    return permission in permissions(role)
