"""Deployment reconcile: pods, Service, rollout, status, and the base DeployedModel."""

from __future__ import annotations

from typing import Any

from ..constants import LABEL_ACCOUNT, LABEL_COMPONENT, LABEL_DEPLOYMENT, short_hash
from ..context import Context, log
from ..kube import Obj
from ..planning.common import owner_reference, resolve_ref
from ..planning.deployment import DeploymentInputs, plan_deployment


def reconcile_deployment(ctx: Context, namespace: str, name: str) -> None:
    with ctx.reconciling("Deployment", namespace, name):
        deployment = ctx.kube.get("Deployment", name, namespace)
        if deployment is None:
            return
        spec = deployment.get("spec") or {}
        base = None
        try:
            ref = resolve_ref(spec.get("baseModel", ""), "models", namespace)
            base = ctx.kube.get("Model", ref.name, ref.namespace)
        except ValueError:
            ref = None
        account = ctx.kube.get("Account", namespace)
        quota = ((account or {}).get("spec") or {}).get("quota") or {}
        # The account's other pods and deployments matter only for quota checks; listing
        # them on every reconcile would cost O(deployments^2) in a large account.
        gpu_quota = bool(quota.get("gpus") is not None or quota.get("gpusPerAcceleratorType"))
        if gpu_quota:
            labels = {LABEL_ACCOUNT: namespace, LABEL_COMPONENT: "model-server"}
            account_pods = ctx.kube.list("Pod", namespace, labels=labels)
            own = [p for p in account_pods if p["metadata"]["labels"].get(LABEL_DEPLOYMENT) == name]
            others = [p for p in account_pods if p not in own]
        else:
            own = ctx.kube.list("Pod", namespace, labels={LABEL_DEPLOYMENT: name})
            others = []
        siblings = []
        if quota.get("deployments") is not None:
            siblings = [
                d for d in ctx.kube.list("Deployment", namespace) if d["metadata"]["name"] != name
            ]
        plan = plan_deployment(
            DeploymentInputs(
                deployment=deployment,
                base_model=base,
                pods=own,
                settings=ctx.settings,
                now=ctx.clock(),
                account=account,
                siblings=siblings,
                other_pods=others,
            )
        )
        if plan.service is not None:
            ctx.kube.ensure(plan.service)
        for pod_name in plan.delete:
            if ctx.kube.delete("Pod", pod_name, namespace):
                log.info("deployment %s/%s: deleted pod %s", namespace, name, pod_name)
        for pod in plan.create:
            if ctx.kube.create_if_missing(pod):
                log.info(
                    "deployment %s/%s: created pod %s", namespace, name, pod["metadata"]["name"]
                )
        for type_, reason, message in plan.events:
            ctx.event(deployment, type_, reason, message)
        ctx.write_status(deployment, plan.status)
        if ref is not None and base is not None and plan.service is not None:
            _ensure_base_deployed_model(ctx, deployment, spec.get("baseModel", ""), ref.name)


def base_deployed_model_name(model_id: str, namespace: str, deployment: str) -> str:
    """Fireworks' auto IDs look like ``<model>-<8 chars>``; ours is stable per deployment."""
    return f"{model_id[:50]}-{short_hash(namespace, deployment, length=8)}"


def _ensure_base_deployed_model(
    ctx: Context, deployment: Obj, base_model: str, model_id: str
) -> None:
    """Creating a Deployment deploys its base model (Fireworks' auto-deploy)."""
    metadata = deployment["metadata"]
    body: dict[str, Any] = {
        "apiVersion": "hearth.dev/v1alpha1",
        "kind": "DeployedModel",
        "metadata": {
            "name": base_deployed_model_name(model_id, metadata["namespace"], metadata["name"]),
            "namespace": metadata["namespace"],
            "labels": {LABEL_DEPLOYMENT: metadata["name"]},
            "ownerReferences": [owner_reference(deployment)],
        },
        "spec": {
            "model": base_model,
            "deployment": metadata["name"],
            "modelKind": "HF_BASE_MODEL",
        },
    }
    ctx.kube.create_if_missing(body)
