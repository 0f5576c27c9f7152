"""Fireworks' four roles as ClusterRoles, bound per account namespace by User objects.

Permission matrix (Fireworks) -> Kubernetes verbs on hearth.dev resources:

| Fireworks permission                     | inference-user | contributor | user | admin |
| view models, deployments, jobs, datasets |       yes      |     yes     | yes  |  yes  |
| view users and service accounts          |       yes      |     yes     | yes  |  yes  |
| create resources                         |        -       |     yes     | yes  |  yes  |
| edit/delete any resource                 |        -       |      -      | yes  |  yes  |
| add/modify/remove users and roles        |        -       |      -      |  -   |  yes  |
| view API keys (prefix, state; no secret) |       yes      |     yes     | yes  |  yes  |
| create/delete API keys with kubectl      |        -       |      -      |  -   |  yes  |

Inference itself is authorised by the gateway from the same role. Fireworks lets a
contributor edit and delete *its own* resources; RBAC cannot express ownership, so a
contributor here may create but not change resources (see docs/operator.md). For the
same reason only admins create and delete ApiKeys through the Kubernetes API (Fireworks
lets everyone manage their own keys): RBAC cannot tell "a key for myself" from "a key for
another user". Everyone reads their own key's Secret through a per-key Role.
"""

from __future__ import annotations

from typing import Any

from hearth.api import GROUP, Role

from ..constants import CLUSTER_ROLE_PREFIX, LABEL_ROLE
from .common import managed_labels

WORKLOAD_RESOURCES = ["models", "deployments", "deployedmodels", "datasets", "finetuningjobs"]
READ = ["get", "list", "watch"]
WRITE = ["create", "update", "patch", "delete"]


def cluster_role_name(role: Role | str) -> str:
    return f"{CLUSTER_ROLE_PREFIX}{Role(role).value}"


def _rule(resources: list[str], verbs: list[str], group: str = GROUP) -> dict[str, Any]:
    return {"apiGroups": [group], "resources": resources, "verbs": verbs}


def role_rules(role: Role) -> list[dict[str, Any]]:
    status = [f"{r}/status" for r in WORKLOAD_RESOURCES]
    readable = [*WORKLOAD_RESOURCES, *status, "users", "users/status", "apikeys", "apikeys/status"]
    rules = [_rule(readable, READ)]
    if role == Role.CONTRIBUTOR:
        rules.append(_rule(WORKLOAD_RESOURCES, ["create"]))
    if role in (Role.USER, Role.ADMIN):
        rules.append(_rule(WORKLOAD_RESOURCES, WRITE))
        rules.append(_rule(["deployments/scale"], ["get", "update", "patch"]))
    if role == Role.ADMIN:
        rules.append(_rule(["users", "apikeys"], WRITE))
    return rules


def cluster_roles() -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {
                "name": cluster_role_name(role),
                "labels": managed_labels(**{LABEL_ROLE: role.value}),
            },
            "rules": role_rules(role),
        }
        for role in Role
    ]
