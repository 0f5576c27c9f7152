"""Deployment reconcile: pods, Service, rollout, status, and the base DeployedModel."""

from __future__ import annotations

import secrets

from ..constants import LABEL_ACCOUNT, LABEL_COMPONENT, LABEL_DEPLOYMENT, api_key_secret_name
from ..context import Context, log
from ..planning.common import resolve_ref
from ..planning.deployment import DeploymentInputs, plan_deployment


def reconcile_deployment(ctx: Context, namespace: str, name: str) -> None:
    with ctx.reconciling("Deployment", namespace, name):
        deployment = ctx.kube.get("Deployment", name, namespace)
        if deployment is None:
            return
        spec = deployment.get("spec") or {}
        try:
            ref = resolve_ref(spec.get("baseModel", ""), "models", namespace)
        except ValueError:
            base = None  # the planner reports the invalid reference
        else:
            base = ctx.kube.get("Model", ref.name, ref.namespace)
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
        secret = ctx.kube.get("Secret", api_key_secret_name(name), namespace)
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
                api_key_secret=secret,
                # 256 random bits; stored once, so the servers' token never changes under
                # them (a resync finds the Secret and draws nothing).
                fresh_api_key="" if secret is not None else secrets.token_urlsafe(32),
            )
        )
        # The Secret first: pods refer to it and would wait for it.
        if plan.api_key_secret is not None and ctx.kube.create_if_missing(plan.api_key_secret):
            log.info("deployment %s/%s: created its API-key Secret", namespace, name)
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
        if plan.base_deployed_model is not None:
            ctx.kube.create_if_missing(plan.base_deployed_model)
