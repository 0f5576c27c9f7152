"""DeployedModel reconcile: load the adapter into every ready replica; unload on delete."""

from __future__ import annotations

from ..constants import (
    LABEL_ADDON,
    LABEL_DEPLOYMENT,
    LABEL_MODEL,
    LABEL_MODEL_ACCOUNT,
    adapter_annotation,
)
from ..context import Context, log
from ..kube import Obj
from ..planning.common import is_terminating
from ..planning.deployed_model import (
    DeployedModelInputs,
    check,
    deployed_model_status,
    deployment_ref,
    load_actions,
    model_ref,
    served_name,
    unload_targets,
)
from ..server_client import load_adapter, unload_adapter


class AdapterLoadFailed(Exception):
    """Some replica refused the adapter; the caller retries with backoff."""


def _ensure_labels(ctx: Context, dm: Obj, model: Obj | None) -> None:
    """Labels that let Models and Deployments find their DeployedModels with a selector."""
    metadata = dm["metadata"]
    try:
        m_ref, d_ref = model_ref(dm), deployment_ref(dm)
    except ValueError:
        return
    wanted = {
        LABEL_MODEL_ACCOUNT: m_ref.namespace,
        LABEL_MODEL: m_ref.name,
        LABEL_DEPLOYMENT: d_ref.name,
    }
    if model is not None:
        kind = (model.get("spec") or {}).get("kind", "HF_PEFT_ADDON")
        wanted[LABEL_ADDON] = "true" if kind == "HF_PEFT_ADDON" else "false"
    labels = metadata.get("labels") or {}
    if all(labels.get(k) == v for k, v in wanted.items()):
        return
    ctx.kube.merge_patch(
        "DeployedModel", metadata["name"], metadata["namespace"], {"metadata": {"labels": wanted}}
    )
    metadata["labels"] = {**labels, **wanted}


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
        failures: dict[str, str] = {}
        if verdict.ok and verdict.is_addon:
            for action in load_actions(inputs, ctx.settings.server_port):
                result = load_adapter(
                    action.pod_ip,
                    ctx.settings.server_port,
                    action.lora_name,
                    action.lora_path,
                    timeout=ctx.settings.adapter_load_timeout,
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
                        pod["metadata"].setdefault("annotations", {})[action.annotation] = (
                            action.value
                        )
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
        annotation = adapter_annotation(metadata["name"])
        problems = []
        for pod_name, pod_ip in unload_targets(dm, pods):
            result = unload_adapter(
                pod_ip,
                ctx.settings.server_port,
                lora_name,
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
