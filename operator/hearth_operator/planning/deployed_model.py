"""DeployedModel: cross-object checks, which replicas need the adapter, default, status.

Loading is recorded on each pod as an annotation ``adapter.hearth.dev/<deployed model>``
whose value names what was loaded and the container's restart count, so a retried
reconcile does not load twice and a restarted server (which forgot its adapters) gets
them again.

While a live pod records the adapter (or a load is about to happen) the DeployedModel
carries the finalizer ``hearth.dev/unload-adapters``, and only then: its deletion waits
for the unload, and nothing else in Hearth blocks a deletion.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hearth.api import DeployedModelState, DeploymentSpec, ModelKind, ModelState, ServingEngine

from ..conditions import Cond, set_conditions
from ..constants import (
    FINALIZER_ADAPTERS,
    LABEL_ADDON,
    LABEL_DEPLOYMENT,
    LABEL_MODEL,
    LABEL_MODEL_ACCOUNT,
    adapter_annotation,
    short_hash,
)
from .common import (
    Obj,
    Ref,
    creation_key,
    is_terminating,
    pod_ready,
    resolve_ref,
    restart_count,
)
from .engines import engine_of_pod


@dataclass(frozen=True)
class DeployedModelInputs:
    deployed_model: Obj
    model: Obj | None
    deployment: Obj | None
    #: Pods of the deployment.
    pods: list[Obj]
    #: Every DeployedModel of the same model (this one included), for the default.
    same_model: list[Obj] = field(default_factory=list)
    #: Every DeployedModel on the same deployment (this one included), for capacity.
    same_deployment: list[Obj] = field(default_factory=list)
    #: Addon DeployedModels' models, by "<namespace>/<name>", to tell addons from bases.
    addon_models: frozenset[str] = frozenset()


@dataclass(frozen=True)
class LoadAction:
    pod: str
    pod_ip: str
    lora_name: str
    #: The adapter Model's source URI (the engine's client translates it).
    lora_path: str
    annotation: str
    value: str
    #: What the pod runs: the request depends on it (planning/engines.py).
    engine: ServingEngine = ServingEngine.HEARTH


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str
    message: str
    is_addon: bool = False
    #: Not an error yet: something it needs exists but is not ready (applied together).
    waiting: bool = False


def model_ref(dm: Obj) -> Ref:
    return resolve_ref(
        (dm.get("spec") or {}).get("model", ""), "models", dm["metadata"]["namespace"]
    )


def deployment_ref(dm: Obj) -> Ref:
    return resolve_ref(
        (dm.get("spec") or {}).get("deployment", ""), "deployments", dm["metadata"]["namespace"]
    )


def served_name(dm: Obj) -> str:
    """The name clients (and the gateway) send to the server for this model."""
    return model_ref(dm).full_name("models")


def _is_addon(model: Obj) -> bool:
    kind = (model.get("spec") or {}).get("kind", ModelKind.HF_PEFT_ADDON.value)
    return bool(kind == ModelKind.HF_PEFT_ADDON.value)


def label_patch(dm: Obj, model: Obj | None) -> dict[str, str] | None:
    """Labels that let Models and Deployments find their DeployedModels with a selector
    (and tell addons from bases); None when they are in place or the refs are invalid."""
    try:
        m_ref, d_ref = model_ref(dm), deployment_ref(dm)
    except ValueError:
        return None
    wanted = {
        LABEL_MODEL_ACCOUNT: m_ref.namespace,
        LABEL_MODEL: m_ref.name,
        LABEL_DEPLOYMENT: d_ref.name,
    }
    if model is not None:
        wanted[LABEL_ADDON] = "true" if _is_addon(model) else "false"
    labels = dm["metadata"].get("labels") or {}
    if all(labels.get(key) == value for key, value in wanted.items()):
        return None
    return wanted


def check(inputs: DeployedModelInputs) -> Verdict:
    dm = inputs.deployed_model
    namespace = dm["metadata"]["namespace"]
    spec = dm.get("spec") or {}
    try:
        m_ref, d_ref = model_ref(dm), deployment_ref(dm)
    except ValueError as error:
        return Verdict(False, "InvalidSpec", str(error))
    model_name = m_ref.full_name("models")
    deployment_name = d_ref.full_name("deployments")
    if d_ref.namespace != namespace:
        return Verdict(
            False,
            "DeploymentInOtherAccount",
            f"deployment {deployment_name} is not in account {namespace}",
        )
    model, deployment = inputs.model, inputs.deployment
    if model is None:
        return Verdict(False, "ModelNotFound", f"model {model_name} does not exist")
    if deployment is None or is_terminating(deployment):
        return Verdict(False, "DeploymentNotFound", f"deployment {deployment_name} does not exist")
    model_spec = model.get("spec") or {}
    addon = _is_addon(model)
    hint = spec.get("modelKind")
    actual = model_spec.get("kind", ModelKind.HF_PEFT_ADDON.value)
    # HF_BASE_MODEL stands for any base model: an EMBEDDING_MODEL is one too (the
    # DeployedModel a Deployment creates for its base says HF_BASE_MODEL).
    base_hint = hint == ModelKind.HF_BASE_MODEL.value and not addon
    if hint and hint != actual and not base_hint:
        return Verdict(
            False, "ModelKindMismatch", f"spec.modelKind says {hint} but {model_name} is {actual}"
        )
    if m_ref.namespace != namespace and not model_spec.get("public", False):
        return Verdict(
            False,
            "ModelNotAccessible",
            f"model {model_name} is in another account and is not public",
        )
    state = (model.get("status") or {}).get("state")
    if state == ModelState.FAILED.value:
        return Verdict(False, "ModelFailed", f"model {model_name} is FAILED")
    if state != ModelState.READY.value:
        return Verdict(
            False,
            "ModelNotReady",
            f"waiting for model {model_name} ({state or 'not validated yet'})",
            waiting=True,
        )
    d_spec = DeploymentSpec.model_validate(deployment.get("spec") or {})
    deployment_base = resolve_ref(d_spec.base_model, "models", d_ref.namespace)
    if not addon:
        if deployment_base != m_ref:
            return Verdict(
                False,
                "NotTheDeploymentsBaseModel",
                f"deployment {deployment_name} serves {deployment_base.full_name('models')}, "
                f"not {model_name}; a base model is deployed by creating a Deployment",
            )
        return Verdict(True, "Serving", f"base model of {deployment_name}")
    peft = model_spec.get("peftDetails") or {}
    addon_base = resolve_ref(peft.get("baseModel", ""), "models", m_ref.namespace)
    if addon_base != deployment_base:
        return Verdict(
            False,
            "BaseModelMismatch",
            f"{model_name} is a LoRA of {addon_base.full_name('models')} but deployment "
            f"{deployment_name} serves {deployment_base.full_name('models')}",
            is_addon=True,
        )
    if spec.get("serverless") or d_spec.serverless:
        return Verdict(
            False,
            "AddonNotServerless",
            f"{model_name} is a LoRA addon; LoRA addons are never deployed serverless",
            is_addon=True,
        )
    if not d_spec.enable_addons:
        return Verdict(
            False,
            "AddonsDisabled",
            f"deployment {deployment_name} does not have enableAddons: true",
            is_addon=True,
        )
    rank = int(peft.get("r", 0))
    if rank > d_spec.max_peft_rank:
        return Verdict(
            False,
            "RankTooHigh",
            f"{model_name} has rank {rank}; deployment {deployment_name} accepts at "
            f"most maxPeftRank {d_spec.max_peft_rank}",
            is_addon=True,
        )
    addons_here = [
        other
        for other in inputs.same_deployment
        if not is_terminating(other) and _key(other) in inputs.addon_models
    ]
    if _key(dm) not in {_key(o) for o in addons_here}:
        addons_here.append(dm)
    order = [_key(o) for o in sorted(addons_here, key=creation_key)]
    position = order.index(_key(dm)) + 1
    if position > d_spec.num_peft_host_cached:
        return Verdict(
            False,
            "CapacityExceeded",
            f"deployment {deployment_name} holds at most numPeftHostCached="
            f"{d_spec.num_peft_host_cached} adapters; this would be number {position}",
            is_addon=True,
        )
    return Verdict(True, "Loading", f"LoRA addon on {deployment_name}", is_addon=True)


def _key(obj: Obj) -> str:
    return f"{obj['metadata']['namespace']}/{obj['metadata']['name']}"


def is_default(inputs: DeployedModelInputs) -> tuple[bool, str | None]:
    """(whether this is the model's default, a conflict message if two claim it).

    An explicit ``default: true`` wins, the oldest first; with none, the model's first
    DeployedModel is its default.
    """
    dm = inputs.deployed_model
    live = [d for d in inputs.same_model if not is_terminating(d)]
    if _key(dm) not in {_key(d) for d in live}:
        live.append(dm)
    live.sort(key=creation_key)
    explicit = [d for d in live if (d.get("spec") or {}).get("default") is True]
    if explicit:
        winner = explicit[0]
        if (dm.get("spec") or {}).get("default") is True and _key(winner) != _key(dm):
            return False, (
                f"deployed model {winner['metadata']['name']} is already the default of this "
                "model; only one default per model"
            )
        return _key(winner) == _key(dm), None
    if (dm.get("spec") or {}).get("default") is False:
        return False, None
    unset = [d for d in live if (d.get("spec") or {}).get("default") is None]
    return bool(unset) and _key(unset[0]) == _key(dm), None


def annotation_value(lora_name: str, lora_path: str, pod: Obj) -> str:
    """What is loaded, and into which incarnation of the server container."""
    return f"{short_hash(lora_name, lora_path)}.{restart_count(pod)}"


def load_actions(inputs: DeployedModelInputs, port: int) -> list[LoadAction]:
    """Ready replicas that do not hold this addon (or held it before a restart)."""
    dm, model = inputs.deployed_model, inputs.model
    assert model is not None
    lora_name = served_name(dm)
    lora_path = (model.get("spec") or {})["source"]["uri"]
    key = adapter_annotation(dm["metadata"]["name"])
    actions = []
    for pod in sorted(inputs.pods, key=lambda p: p["metadata"]["name"]):
        if not pod_ready(pod):
            continue
        wanted = annotation_value(lora_name, lora_path, pod)
        if pod["metadata"].get("annotations", {}).get(key) == wanted:
            continue
        pod_ip = pod.get("status", {}).get("podIP")
        if not pod_ip:
            continue
        actions.append(
            LoadAction(
                pod["metadata"]["name"],
                pod_ip,
                lora_name,
                lora_path,
                key,
                wanted,
                engine_of_pod(pod),
            )
        )
    return actions


def finalizers_after(dm: Obj, pods: list[Obj], actions: list[LoadAction]) -> list[str] | None:
    """The DeployedModel's finalizers for this round, or None when they stay as they are.

    It holds ``FINALIZER_ADAPTERS`` exactly while an adapter may be loaded in a running
    server: from before the first load (so a deletion racing the load still unloads)
    until no live pod records one. Other finalizers are kept.
    """
    finalizers = list(dm["metadata"].get("finalizers") or [])
    needed = bool(actions) or bool(unload_targets(dm, pods))
    if needed == (FINALIZER_ADAPTERS in finalizers):
        return None
    if needed:
        return [*finalizers, FINALIZER_ADAPTERS]
    return [f for f in finalizers if f != FINALIZER_ADAPTERS]


def unload_targets(dm: Obj, pods: list[Obj]) -> list[tuple[str, str]]:
    """(pod name, pod IP) of live pods recorded as holding this adapter."""
    key = adapter_annotation(dm["metadata"]["name"])
    return [
        (p["metadata"]["name"], p.get("status", {}).get("podIP", ""))
        for p in pods
        if key in p["metadata"].get("annotations", {}) and not is_terminating(p)
    ]


def deployed_model_status(
    inputs: DeployedModelInputs,
    verdict: Verdict,
    *,
    failures: dict[str, str],
    now: datetime,
) -> dict[str, Any]:
    """Status from the checks, the pods' annotations and this round's load failures."""
    dm = inputs.deployed_model
    generation = dm["metadata"].get("generation")
    previous = dm.get("status") or {}
    default, conflict = is_default(inputs)
    replicas: list[dict[str, Any]] = []
    loaded = 0
    if verdict.ok and inputs.model is not None:
        key = adapter_annotation(dm["metadata"]["name"])
        lora_path = (inputs.model.get("spec") or {})["source"]["uri"]
        for pod in sorted(inputs.pods, key=lambda p: p["metadata"]["name"]):
            if not pod_ready(pod):
                continue
            name = pod["metadata"]["name"]
            if not verdict.is_addon:
                entry = {"pod": name, "state": "LOADED"}
            elif name in failures:
                entry = {"pod": name, "state": "FAILED", "message": failures[name][:1024]}
            elif pod["metadata"].get("annotations", {}).get(key) == annotation_value(
                served_name(dm), lora_path, pod
            ):
                entry = {"pod": name, "state": "LOADED"}
            else:
                entry = {"pod": name, "state": "LOADING"}
            loaded += entry["state"] == "LOADED"
            replicas.append(entry)

    if is_terminating(dm):
        state, cond = (
            DeployedModelState.UNDEPLOYING,
            Cond("Ready", False, "Undeploying", "unloading from replicas"),
        )
    elif conflict:
        state, cond = DeployedModelState.FAILED, Cond("Ready", False, "DefaultConflict", conflict)
    elif not verdict.ok:
        state = DeployedModelState.DEPLOYING if verdict.waiting else DeployedModelState.FAILED
        cond = Cond("Ready", False, verdict.reason, verdict.message)
    elif failures:
        failed_pod, failure = sorted(failures.items())[0]
        text = f"loading into {failed_pod} failed: {failure}"
        state, cond = DeployedModelState.FAILED, Cond("Ready", False, "LoadFailed", text)
    elif not replicas:
        state, cond = (
            DeployedModelState.DEPLOYING,
            Cond("Ready", False, "WaitingForReplicas", "the deployment has no ready replica yet"),
        )
    elif loaded == len(replicas):
        state, cond = (
            DeployedModelState.DEPLOYED,
            Cond("Ready", True, "Loaded", f"loaded on {loaded}/{len(replicas)} ready replicas"),
        )
    else:
        state, cond = (
            DeployedModelState.DEPLOYING,
            Cond("Ready", False, "Loading", f"loaded on {loaded}/{len(replicas)} ready replicas"),
        )
    return {
        "state": state.value,
        "observedGeneration": generation,
        "message": "" if cond.status else cond.message,
        "default": default,
        "replicas": replicas,
        "loadedReplicaCount": loaded,
        "conditions": set_conditions(
            previous.get("conditions"), [cond], generation=generation, now=now
        ),
    }
