"""Who may do what through the control plane (pure): Fireworks' role table.

Every refusal is a 403 that names the rule. An allowed write says how it reaches the
Kubernetes API: as the caller (impersonation, so RBAC decides as it would for kubectl),
or as the gateway itself for the two Fireworks rules RBAC cannot express: a user
managing its *own* API keys (RBAC lets only admins write ApiKeys, as it cannot tell "my
key" from "someone's key") and a contributor changing a resource *it created* (RBAC
cannot express ownership; the gateway checks ``hearth.dev/created-by``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from hearth.roles import Permission, allows

from ..auth import Principal
from .errors import ApiError


class Action(enum.StrEnum):
    READ = "read"
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"


@dataclass(frozen=True)
class Grant:
    #: True: the write goes to Kubernetes as the caller; False: as the gateway.
    impersonate: bool
    #: Why the gateway writes as itself (for the log), when it does.
    reason: str = ""


AS_CALLER = Grant(impersonate=True)


def _refuse(principal: Principal, rule: str) -> ApiError:
    return ApiError(
        403, f"permission denied: user {principal.user!r} has role {principal.role!r}; {rule}"
    )


def check_account(principal: Principal, account: str) -> None:
    if principal.account != account:
        raise ApiError(
            403,
            f"permission denied: the API key belongs to account {principal.account!r} and "
            f"may not act in account {account!r}",
        )


def authorize_resource(
    principal: Principal, account: str, action: Action, owner: str | None = None
) -> Grant:
    """Models, deployments, deployed models, datasets and jobs. ``owner``: the user ID in
    the object's ``hearth.dev/created-by`` (None when it has none)."""
    check_account(principal, account)
    role = principal.role
    if action is Action.READ:
        if not allows(role, Permission.VIEW):
            raise _refuse(principal, "viewing resources needs the 'view' permission")
        return AS_CALLER
    if action is Action.CREATE:
        if not allows(role, Permission.CREATE):
            raise _refuse(principal, "creating resources needs role contributor, user or admin")
        return AS_CALLER
    if allows(role, Permission.EDIT_OTHERS):
        return AS_CALLER
    if allows(role, Permission.EDIT_OWN):
        if owner is not None and owner == principal.user:
            return Grant(
                impersonate=False,
                reason=f"contributor {principal.user} changes a resource it created",
            )
        made_by = f"was created by {owner!r}" if owner else "has no creator recorded"
        raise _refuse(
            principal,
            f"a contributor may {action.value} only resources it created (createdBy); this "
            f"one {made_by}",
        )
    raise _refuse(
        principal, f"{action.value} needs role contributor (own resources), user or admin"
    )


def authorize_users(principal: Principal, account: str, action: Action) -> Grant:
    check_account(principal, account)
    if action is Action.READ:
        if not allows(principal.role, Permission.VIEW):
            raise _refuse(principal, "viewing users needs the 'view' permission")
        return AS_CALLER
    if not allows(principal.role, Permission.MANAGE_USERS):
        raise _refuse(principal, "only admins add, modify and remove users and roles")
    return AS_CALLER


def authorize_api_keys(principal: Principal, account: str, user: str, action: Action) -> Grant:
    """Everyone manages its own keys; admins manage everyone's."""
    check_account(principal, account)
    if user != principal.user:
        if not allows(principal.role, Permission.MANAGE_OTHERS_KEYS):
            raise _refuse(
                principal,
                f"only admins see or manage the API keys of other users (here {user!r})",
            )
        return AS_CALLER
    if not allows(principal.role, Permission.MANAGE_OWN_KEYS):
        raise _refuse(principal, "managing API keys needs the 'manage-own-keys' permission")
    if action is Action.READ or allows(principal.role, Permission.MANAGE_OTHERS_KEYS):
        return AS_CALLER
    return Grant(impersonate=False, reason=f"user {principal.user} manages its own API key")
