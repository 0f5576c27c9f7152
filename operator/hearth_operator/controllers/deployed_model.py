"""DeployedModel reconcile: load the adapter into every ready replica; unload on delete."""

from __future__ import annotations

from ..constants import (
    LABEL_ADDON,
    LABEL_DEPLOYMENT,
    LABEL_MODEL,
    LABEL_MODEL_ACCOUNT,
    adapter_annotation,
    api_key_secret_name,
)
from ..context import Context, log
from ..kube import Obj
from ..planning.common import is_terminating
from ..planning.deployed_model import (
    DeployedModelInputs,
    check,
    deployed_model_status,
    deployment_ref,
    finalizers_after,
    label_patch,
    load_actions,
    model_ref,
    served_name,
    unload_targets,
)
from ..planning.deployment import api_key_from_secret
from ..server_client import load_adapter, unload_adapter


class AdapterLoadFailed(Exception):
    """Some replica refused the adapter; the caller retries with backoff."""


def _ensure_labels(ctx: Context, dm: Obj, model: Obj | None) -> None:
    labels = label_patch(dm, model)
    if labels is None:
        return
    metadata = dm["metadata"]
    updated = ctx.kube.merge_patch(
        "DeployedModel", metadata["name"], metadata["namespace"], {"metadata": {"labels": labels}}
    )
    metadata["labels"] = {**(metadata.get("labels") or {}), **labels}
    metadata["resourceVersion"] = updated["metadata"]["resourceVersion"]


def server_api_key(ctx: Context, namespace: str, deployment: str) -> str | None:
    """The token the Deployment's servers require, from its Secret (None: no Secret)."""
    return api_key_from_secret(ctx.kube.get("Secret", api_key_secret_name(deployment), namespace))


def gather(ctx: Context, dm: Obj) -> DeployedModelInputs:
    namespace = dm["metadata"]["namespace"]
    model = deployment = None
    pods: list[Obj] = []
    same_model: list[Obj] = []
    same_deployment: list[Obj] = []
    try:
        m_ref, d_ref = model_ref(dm), deployment_ref(dm)
    except ValueError:
        return DeployedModelInputs(dm, None, None, [])
    model = ctx.kube.get("Model", m_ref.name, m_ref.namespace)
    _ensure_labels(ctx, dm, model)
    if d_ref.namespace == namespace:
        deployment = ctx.kube.get("Deployment", d_ref.name, d_ref.namespace)
        pods = ctx.kube.list("Pod", namespace, labels={LABEL_DEPLOYMENT: d_ref.name})
        same_deployment = ctx.kube.list(
            "DeployedModel", namespace, labels={LABEL_DEPLOYMENT: d_ref.name}
        )
    same_model = ctx.kube.list(
        "DeployedModel",
        None,
        labels={LABEL_MODEL_ACCOUNT: m_ref.namespace, LABEL_MODEL: m_ref.name},
    )
    addons = frozenset(
        f"{d['metadata']['namespace']}/{d['metadata']['name']}"
        for d in same_deployment
        if (d["metadata"].get("labels") or {}).get(LABEL_ADDON) == "true"
    )
    return DeployedModelInputs(dm, model, deployment, pods, same_model, same_deployment, addons)


def reconcile_deployed_model(ctx: Context, namespace: str, name: str) -> None:
    """Load where missing and write status; raises AdapterLoadFailed to be retried."""
    with ctx.reconciling("DeployedModel", namespace, name):
        dm = ctx.kube.get("DeployedModel", name, namespace)
        if dm is None or is_terminating(dm):
            return
        inputs = gather(ctx, dm)
        verdict = check(inputs)
        actions = (
            load_actions(inputs, ctx.settings.server_port)
            if verdict.ok and verdict.is_addon
            else []
        )
        # Before any load, so a deletion racing the load still finds it and unloads.
        ctx.kube.update_finalizers(dm, lambda fresh: finalizers_after(fresh, inputs.pods, actions))
        failures: dict[str, str] = {}
        api_key = server_api_key(ctx, namespace, deployment_ref(dm).name) if actions else None
        for action in actions:
            result = load_adapter(
                action.pod_ip,
                ctx.settings.server_port,
                action.lora_name,
                action.lora_path,
                api_key=api_key,
                timeout=ctx.settings.adapter_load_timeout,
                engine=action.engine,
                pvc_mount_root=ctx.settings.pvc_mount_root,
            )
            ctx.metrics.adapter_loads.labels("ok" if result.ok else "error").inc()
            if not result.ok:
                failures[action.pod] = result.message
                continue
            ctx.kube.merge_patch(
                "Pod",
                action.pod,
                namespace,
                {"metadata": {"annotations": {action.annotation: action.value}}},
            )
            for pod in inputs.pods:  # keep the local view in step for the status
                if pod["metadata"]["name"] == action.pod:
                    pod["metadata"].setdefault("annotations", {})[action.annotation] = action.value
            log.info("loaded %s into %s/%s", action.lora_name, namespace, action.pod)
        previous_state = (dm.get("status") or {}).get("state")
        status = deployed_model_status(inputs, verdict, failures=failures, now=ctx.clock())
        ctx.write_status(dm, status)
        if previous_state != status["state"]:
            message = status["message"] or status["conditions"][-1]["message"]
            failed = status["state"] == "FAILED"
            ctx.event(dm, "Warning" if failed else "Normal", status["state"].title(), message)
        if failures:
            raise AdapterLoadFailed("; ".join(f"{p}: {m}" for p, m in sorted(failures.items())))


def unload_deployed_model(ctx: Context, dm: Obj) -> list[str]:
    """Unload from every replica recorded as holding it; returns the failures."""
    metadata = dm["metadata"]
    namespace = metadata["namespace"]
    with ctx.reconciling("DeployedModel", namespace, metadata["name"]):
        try:
            d_ref = deployment_ref(dm)
            lora_name = served_name(dm)
        except ValueError:
            return []
        pods = ctx.kube.list("Pod", namespace, labels={LABEL_DEPLOYMENT: d_ref.name})
        targets = unload_targets(dm, pods)
        api_key = server_api_key(ctx, namespace, d_ref.name) if targets else None
        annotation = adapter_annotation(metadata["name"])
        problems = []
        for pod_name, pod_ip in targets:
            result = unload_adapter(
                pod_ip,
                ctx.settings.server_port,
                lora_name,
                api_key=api_key,
                timeout=ctx.settings.adapter_load_timeout,
            )
            if not result.ok:
                problems.append(f"{pod_name}: {result.message}")
                continue
            ctx.kube.merge_patch(
                "Pod", pod_name, namespace, {"metadata": {"annotations": {annotation: None}}}
            )
        return problems


def deployed_models_on(ctx: Context, namespace: str, deployment: str) -> list[str]:
    return [
        d["metadata"]["name"]
        for d in ctx.kube.list("DeployedModel", namespace, labels={LABEL_DEPLOYMENT: deployment})
    ]
