"""User -> RoleBinding (and a ServiceAccount for service-account users); status."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hearth.api import UserSpec, UserState

from ..conditions import Cond, set_conditions
from ..constants import LABEL_USER
from .common import Obj, is_terminating, managed_labels, owner_reference
from .roles import cluster_role_name


@dataclass(frozen=True)
class UserPlan:
    service_account: Obj | None
    role_binding: Obj
    subject: str


def role_binding_name(user: str) -> str:
    return f"hearth-user-{user}"


def plan_user(user: Obj) -> UserPlan:
    metadata = user["metadata"]
    name, namespace = metadata["name"], metadata["namespace"]
    spec = UserSpec.model_validate(user.get("spec") or {})
    labels = managed_labels(**{LABEL_USER: name})
    owner = [owner_reference(user)]
    service_account = None
    if spec.service_account:
        service_account = {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": labels,
                "ownerReferences": owner,
            },
        }
        subject = {"kind": "ServiceAccount", "name": name, "namespace": namespace}
        shown = f"ServiceAccount {namespace}/{name}"
    else:
        if not spec.email:  # the CRD's CEL rule makes this unreachable through the API
            raise ValueError("spec.email is required unless spec.serviceAccount is true")
        subject = {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": spec.email}
        shown = f"User {spec.email}"
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {
            "name": role_binding_name(name),
            "namespace": namespace,
            "labels": labels,
            "ownerReferences": owner,
        },
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": cluster_role_name(spec.role),
        },
        "subjects": [subject],
    }
    return UserPlan(service_account=service_account, role_binding=binding, subject=shown)


def binding_needs_replacement(existing: Obj, desired: Obj) -> bool:
    """roleRef is immutable in Kubernetes: a role change means delete and recreate."""
    return bool(existing.get("roleRef") != desired["roleRef"])


def user_status(
    user: Obj, plan: UserPlan | None, error: str | None, now: datetime
) -> dict[str, Any]:
    metadata = user["metadata"]
    generation = metadata.get("generation")
    previous = user.get("status") or {}
    if is_terminating(user):
        state, cond = UserState.DELETING, Cond("Ready", False, "Deleting", "user is being removed")
    elif error or plan is None:
        state, cond = UserState.CREATING, Cond("Ready", False, "InvalidSpec", error or "")
    else:
        state = UserState.READY
        spec = UserSpec.model_validate(user.get("spec") or {})
        cond = Cond("Ready", True, "Bound", f"{plan.subject} has role {spec.role.value}")
    status: dict[str, Any] = {
        "state": state.value,
        "observedGeneration": generation,
        "message": cond.message,
        "conditions": set_conditions(
            previous.get("conditions"), [cond], generation=generation, now=now
        ),
    }
    if plan is not None:
        status["subject"] = plan.subject
        status["roleBinding"] = plan.role_binding["metadata"]["name"]
    return status
