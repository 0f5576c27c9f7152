"""Account reconcile: namespace and its guard rails; usage against quota."""

from __future__ import annotations

from hearth import names
from hearth.api import AccountState

from ..conditions import Cond, set_conditions
from ..constants import ACCOUNT_QUOTA_NAME, LABEL_COMPONENT
from ..context import Context
from ..kube import Obj
from ..planning.account import account_status, account_usage, plan_account

#: Top-level fields the reconcile keeps equal to the plan, by kind (labels and owners
#: always): a bound PVC's spec is immutable, a RoleBinding has subjects, not a spec.
KEPT_IN_LINE: dict[str, tuple[str, ...]] = {
    "PersistentVolumeClaim": (),
    "RoleBinding": ("subjects",),
}


def reconcile_account(ctx: Context, name: str) -> None:
    with ctx.reconciling("Account", name):
        account = ctx.kube.get("Account", name)
        if account is None:
            return
        try:
            names.validate_account_id(name, operator_namespace=ctx.settings.namespace)
        except ValueError as error:
            _refuse(ctx, account, str(error))
            return
        plan = plan_account(account, ctx.settings)
        namespace = ctx.kube.ensure(plan.namespace, fields=())
        kinds_present = {child["kind"] for child in plan.children}
        for child in plan.children:
            ctx.kube.ensure(child, fields=KEPT_IN_LINE.get(child["kind"], ("spec",)))
        if "ResourceQuota" not in kinds_present:
            ctx.kube.delete("ResourceQuota", ACCOUNT_QUOTA_NAME, name)
        _write_status(ctx, account, namespace)


def refresh_account_status(ctx: Context, name: str) -> None:
    """Usage changes without the Account changing; a timer calls this."""
    with ctx.reconciling("Account", name):
        account = ctx.kube.get("Account", name)
        if account is None:
            return
        try:
            names.validate_account_id(name, operator_namespace=ctx.settings.namespace)
        except ValueError:
            return
        _write_status(ctx, account, ctx.kube.get("Namespace", name))


def _write_status(ctx: Context, account: Obj, namespace: Obj | None) -> None:
    name = account["metadata"]["name"]
    usage = account_usage(
        ctx.kube.list("Deployment", name) if namespace else [],
        ctx.kube.list("Model", name) if namespace else [],
        ctx.kube.list("Pod", name, labels={LABEL_COMPONENT: "model-server"}) if namespace else [],
    )
    previous_state = (account.get("status") or {}).get("state")
    status = account_status(account, namespace=namespace, usage=usage, now=ctx.clock())
    ctx.write_status(account, status)
    if previous_state != status["state"] and status["state"] == AccountState.READY.value:
        ctx.event(account, "Normal", "Ready", f"namespace {name} is ready")


def _refuse(ctx: Context, account: Obj, message: str) -> None:
    generation = account["metadata"].get("generation")
    cond = Cond("Ready", False, "InvalidName", message)
    status = {
        "state": AccountState.STATE_UNSPECIFIED.value,
        "observedGeneration": generation,
        "message": message,
        "conditions": set_conditions(
            (account.get("status") or {}).get("conditions"),
            [cond],
            generation=generation,
            now=ctx.clock(),
        ),
    }
    if ctx.write_status(account, status):
        ctx.event(account, "Warning", "InvalidName", message)
