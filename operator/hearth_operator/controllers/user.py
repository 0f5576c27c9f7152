"""User reconcile: the RoleBinding (and ServiceAccount) that grant the role."""

from __future__ import annotations

from ..constants import LABEL_USER
from ..context import Context
from ..planning.user import binding_needs_replacement, plan_user, user_status


def reconcile_user(ctx: Context, namespace: str, name: str) -> None:
    with ctx.reconciling("User", namespace, name):
        user = ctx.kube.get("User", name, namespace)
        if user is None:
            return
        try:
            plan = plan_user(user)
        except ValueError as error:
            ctx.write_status(user, user_status(user, None, str(error), ctx.clock()))
            return
        if plan.service_account is not None:
            ctx.kube.ensure(plan.service_account, fields=())
        else:
            existing_sa = ctx.kube.get("ServiceAccount", name, namespace)
            labels = (existing_sa or {}).get("metadata", {}).get("labels") or {}
            if existing_sa is not None and labels.get(LABEL_USER) == name:
                ctx.kube.delete("ServiceAccount", name, namespace)
        binding_name = plan.role_binding["metadata"]["name"]
        existing = ctx.kube.get("RoleBinding", binding_name, namespace)
        if existing is not None and binding_needs_replacement(existing, plan.role_binding):
            ctx.kube.delete("RoleBinding", binding_name, namespace)
            existing = None
        if existing is None:
            ctx.kube.create_if_missing(plan.role_binding)
        else:
            ctx.kube.ensure(plan.role_binding, fields=("subjects",))
        previous_message = (user.get("status") or {}).get("message")
        status = user_status(user, plan, None, ctx.clock())
        ctx.write_status(user, status)
        if previous_message != status["message"]:
            ctx.event(user, "Normal", "RoleBound", status["message"])
