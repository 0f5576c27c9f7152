"""Model reconcile: cross-object validation, deployedModelRefs, supportsServerless."""

from __future__ import annotations

from ..constants import LABEL_MODEL, LABEL_MODEL_ACCOUNT
from ..context import Context
from ..planning.model import base_model_ref, check_model, deployed_model_refs, model_status


def reconcile_model(ctx: Context, namespace: str, name: str) -> None:
    with ctx.reconciling("Model", namespace, name):
        model = ctx.kube.get("Model", name, namespace)
        if model is None:
            return
        base = None
        try:
            ref = base_model_ref(model)
        except ValueError:
            ref = None
        if ref is not None:
            base = ctx.kube.get("Model", ref.name, ref.namespace)
        verdict = check_model(model, base, platform_account=ctx.settings.platform_account)
        # DeployedModels carry labels naming their model (set by their reconcile), so
        # this finds them in every account without listing them all.
        deployed = ctx.kube.list(
            "DeployedModel", None, labels={LABEL_MODEL_ACCOUNT: namespace, LABEL_MODEL: name}
        )
        refs = deployed_model_refs(model, deployed)
        serverless = any((d.get("spec") or {}).get("serverless") for d in deployed)
        previous_state = (model.get("status") or {}).get("state")
        status = model_status(model, verdict, refs=refs, serverless=serverless, now=ctx.clock())
        ctx.write_status(model, status)
        if previous_state != status["state"]:
            if verdict.ok:
                ctx.event(model, "Normal", "Ready", verdict.message)
            else:
                ctx.event(model, "Warning", verdict.reason, verdict.message)
