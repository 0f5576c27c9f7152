"""ApiKey reconcile: issue the key once, let its user read it, keep its state current."""

from __future__ import annotations

from hearth.names import InvalidNameError, validate_id

from ..constants import user_api_key_secret_name
from ..context import Context
from ..kube import Obj
from ..planning.api_key import plan_api_key
from ..planning.common import is_terminating


def _user(ctx: Context, api_key: Obj, namespace: str) -> Obj | None:
    user_id = (api_key.get("spec") or {}).get("user")
    if not isinstance(user_id, str):
        return None
    try:
        validate_id(user_id)
    except InvalidNameError:
        return None
    return ctx.kube.get("User", user_id, namespace)


def reconcile_api_key(ctx: Context, namespace: str, name: str) -> None:
    with ctx.reconciling("ApiKey", namespace, name):
        api_key = ctx.kube.get("ApiKey", name, namespace)
        if api_key is None or is_terminating(api_key):
            return
        user = _user(ctx, api_key, namespace)
        secret = ctx.kube.get("Secret", user_api_key_secret_name(name), namespace)
        plan = plan_api_key(api_key, user, secret, ctx.clock())
        if plan.owner_references is not None:
            # With the resourceVersion read: a concurrent change is retried, never lost.
            metadata = api_key["metadata"]
            updated = ctx.kube.merge_patch(
                "ApiKey",
                name,
                namespace,
                {
                    "metadata": {
                        "ownerReferences": plan.owner_references,
                        "resourceVersion": metadata["resourceVersion"],
                    }
                },
            )
            metadata.update(
                ownerReferences=plan.owner_references,
                resourceVersion=updated["metadata"]["resourceVersion"],
            )
        if plan.secret is not None and not ctx.kube.create_if_missing(plan.secret):
            # Someone created it since we looked: the next reconcile reads the key from it.
            raise RuntimeError(f"Secret {plan.secret['metadata']['name']} appeared meanwhile")
        for obj in plan.access:
            ctx.kube.ensure(obj, fields=("rules", "subjects"))
        previous = (api_key.get("status") or {}).get("state")
        ctx.write_status(api_key, plan.status)
        state = plan.status["state"]
        if plan.generated:
            ctx.event(api_key, "Normal", "Issued", plan.status["message"])
        elif previous != state and state in ("EXPIRED", "FAILED"):
            ctx.event(api_key, "Warning", state.title(), plan.status["message"])


def api_keys_of(ctx: Context, namespace: str, user: str) -> list[str]:
    """The names of the ApiKeys of ``user`` in ``namespace``."""
    return [
        key["metadata"]["name"]
        for key in ctx.kube.list("ApiKey", namespace)
        if (key.get("spec") or {}).get("user") == user
    ]
