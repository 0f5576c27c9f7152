"""Deployment -> model-server Pods and a Service; quota; rollout; status.

The planner sees the Deployment, its base Model, the pods it owns and what the rest of the
account holds, and returns what to create and delete plus the status to write. Pods are
named ``<deployment>-<spec hash>-<index>``: creating one that exists is a harmless 409, so
a retried or concurrent reconcile cannot start a replica twice.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from hearth.api import (
    API_VERSION,
    DeploymentSpec,
    DeploymentState,
    ModelKind,
    ModelState,
    ServingEngine,
)
from hearth.api.account import AccountSpec

from ..conditions import Cond, set_conditions
from ..constants import (
    ANNOTATION_ACCELERATOR_TYPE,
    ANNOTATION_SERVING_ENGINE,
    API_KEY_SECRET_KEY,
    LABEL_ACCOUNT,
    LABEL_COMPONENT,
    LABEL_DEPLOYMENT,
    LABEL_NAME,
    LABEL_SPEC_HASH,
    SERVER_APP,
    api_key_secret_name,
    short_hash,
)
from ..settings import Settings
from .account import gpus_of_pod
from .common import (
    Obj,
    Ref,
    creation_key,
    is_terminating,
    managed_labels,
    owner_reference,
    pod_failed,
    pod_failure_reason,
    pod_ready,
    pod_scheduled,
    resolve_ref,
)
from .engines import PROBE_PATHS, Refusal, check_engine, vllm_source
from .hearth_server import hearth_process
from .vllm import SHM_MOUNT, SHM_VOLUME, vllm_process
from .workloads import accelerator_placement, pvc_volumes


@dataclass(frozen=True)
class DeploymentInputs:
    deployment: Obj
    base_model: Obj | None
    pods: list[Obj]
    settings: Settings
    now: datetime
    account: Obj | None = None
    #: Other Deployments in the namespace (for the deployment-count quota).
    siblings: list[Obj] = field(default_factory=list)
    #: Pods of the account that are not this deployment's (for the GPU quota).
    other_pods: list[Obj] = field(default_factory=list)
    #: The Deployment's API-key Secret, if it exists.
    api_key_secret: Obj | None = None
    #: A fresh random token, used only when the Secret does not exist yet (the planner
    #: draws no randomness itself; the token is never rotated once stored).
    fresh_api_key: str = ""


@dataclass
class DeploymentPlan:
    #: The API-key Secret to create (only when none exists).
    api_key_secret: Obj | None = None
    service: Obj | None = None
    #: The DeployedModel of the base model (Fireworks' auto-deploy), created if missing.
    base_deployed_model: Obj | None = None
    create: list[Obj] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)
    status: dict[str, Any] = field(default_factory=dict)
    events: list[tuple[str, str, str]] = field(default_factory=list)


def max_replicas(spec: DeploymentSpec) -> int:
    """Fireworks' default: max(minReplicaCount, 1)."""
    if spec.max_replica_count is not None:
        return spec.max_replica_count
    return max(spec.min_replica_count, 1)


def desired_replicas(spec: DeploymentSpec) -> int:
    """The scale subresource's value, or minReplicaCount, clamped to [min, max]."""
    wanted = spec.replica_count if spec.replica_count is not None else spec.min_replica_count
    return max(spec.min_replica_count, min(wanted, max_replicas(spec)))


def accelerators_per_replica(spec: DeploymentSpec) -> int:
    if spec.accelerator_count is not None:
        return spec.accelerator_count
    return 0 if spec.accelerator_type.value == "CPU" else 1


def service_name(deployment: str) -> str:
    return f"{deployment}-server"


def selector_labels(deployment: str) -> dict[str, str]:
    return {LABEL_NAME: SERVER_APP, LABEL_DEPLOYMENT: deployment}


#: Up to 30 minutes to load the model (period x failureThreshold).
STARTUP_PROBE = {"periodSeconds": 2, "failureThreshold": 900}
#: A server whose /health fails for 30 s in a row (or stalls past 5 s each time) is
#: restarted; a busy but healthy server answers /health from its event loop at once.
LIVENESS_PROBE = {"periodSeconds": 10, "timeoutSeconds": 5, "failureThreshold": 3}


def render_pod_template(
    deployment: Obj, spec: DeploymentSpec, base: Obj, base_ref: Ref, settings: Settings
) -> Obj:
    """The pod every replica of the current spec runs (without name and hash label).

    For servingEngine VLLM the source must be one vLLM loads (``vllm_source``); the planner
    checks that first.
    """
    metadata = deployment["metadata"]
    namespace = metadata["namespace"]
    base_spec = base.get("spec") or {}
    source = base_spec["source"]["uri"]
    served_name = base_ref.full_name("models")
    engine = spec.serving_engine
    accelerators = accelerators_per_replica(spec)
    resources, placement_fields = accelerator_placement(
        spec.accelerator_type.value, accelerators, settings
    )
    secret_name = api_key_secret_name(metadata["name"])
    # hearth-server listens on POD_IP when it is set, and vLLM's --host names it (a real
    # cluster gives every pod its own IP; the test harness gives each one a loopback address).
    env: list[Obj] = [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]
    if engine == ServingEngine.VLLM:
        image, command = settings.vllm_image, list(settings.vllm_command)
        vllm_from = vllm_source(source, settings.pvc_mount_root)
        process = vllm_process(spec, vllm_from, served_name, accelerators, secret_name, settings)
    else:
        image, command = settings.server_image, list(settings.server_command)
        process = hearth_process(spec, source, served_name, secret_name, settings)
    env += process.env
    paths = PROBE_PATHS[engine]
    readiness_get = {"path": paths.readiness, "port": settings.server_port}
    liveness_get = {"path": paths.liveness, "port": settings.server_port}
    volumes, mounts = pvc_volumes([source], settings, read_only=True)
    volumes.insert(
        0,
        {"name": "model-cache", "persistentVolumeClaim": {"claimName": settings.model_cache_claim}}
        if settings.model_cache_claim
        else {"name": "model-cache", "emptyDir": {}},
    )
    mounts.insert(0, {"name": "model-cache", "mountPath": settings.model_cache_path})
    if engine == ServingEngine.VLLM:
        volumes.append(SHM_VOLUME)
        mounts.append(SHM_MOUNT)
    pod_spec: Obj = {
        "containers": [
            {
                "name": "server",
                "image": image,
                "command": command,
                "args": process.args,
                "env": env,
                "ports": [{"name": "http", "containerPort": settings.server_port}],
                "resources": resources,
                "volumeMounts": mounts,
                "readinessProbe": {
                    "httpGet": readiness_get,
                    "periodSeconds": 2,
                    "failureThreshold": 3,
                },
                # Loading weights can take minutes; the kubelet runs no liveness check until
                # the startup probe has passed, so a long load is never killed.
                "startupProbe": {"httpGet": readiness_get, **STARTUP_PROBE},
                # Once started, /health answers 503 for good when the engine has died; the
                # liveness probe replaces such a server (it also exits by itself).
                "livenessProbe": {"httpGet": liveness_get, **LIVENESS_PROBE},
            }
        ],
        "volumes": volumes,
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": 30,
    }
    pod_spec.update(placement_fields)
    annotations = {ANNOTATION_ACCELERATOR_TYPE: spec.accelerator_type.value}
    if engine != ServingEngine.HEARTH:
        annotations[ANNOTATION_SERVING_ENGINE] = engine.value
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "namespace": namespace,
            "labels": managed_labels(
                **selector_labels(metadata["name"]),
                **{LABEL_ACCOUNT: namespace, LABEL_COMPONENT: "model-server"},
            ),
            "annotations": annotations,
            "ownerReferences": [owner_reference(deployment)],
        },
        "spec": pod_spec,
    }


def render_api_key_secret(deployment: Obj, token: str) -> Obj:
    """The Secret holding the token the Deployment's servers require (and the operator and
    the gateway send); owned by the Deployment, so it goes with it."""
    metadata = deployment["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": api_key_secret_name(metadata["name"]),
            "namespace": metadata["namespace"],
            "labels": managed_labels(**{LABEL_DEPLOYMENT: metadata["name"]}),
            "ownerReferences": [owner_reference(deployment)],
        },
        "type": "Opaque",
        "data": {API_KEY_SECRET_KEY: base64.b64encode(token.encode()).decode()},
    }


def api_key_from_secret(secret: Obj | None) -> str | None:
    """The token in a Deployment's API-key Secret, or None when there is none."""
    encoded = ((secret or {}).get("data") or {}).get(API_KEY_SECRET_KEY)
    if not encoded:
        return None
    return base64.b64decode(encoded).decode()


def base_deployed_model_name(model_id: str, namespace: str, deployment: str) -> str:
    """Fireworks' auto IDs look like ``<model>-<8 chars>``; ours is stable per deployment."""
    return f"{model_id[:50]}-{short_hash(namespace, deployment, length=8)}"


def render_base_deployed_model(deployment: Obj, base_model: str, base_ref: Ref) -> Obj:
    """Creating a Deployment deploys its base model (Fireworks' auto-deploy)."""
    metadata = deployment["metadata"]
    return {
        "apiVersion": API_VERSION,
        "kind": "DeployedModel",
        "metadata": {
            "name": base_deployed_model_name(
                base_ref.name, metadata["namespace"], metadata["name"]
            ),
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


def template_hash(template: Obj) -> str:
    return short_hash(json.dumps(template, sort_keys=True), length=8)


def pod_name(deployment: str, spec_hash: str, index: int) -> str:
    return f"{deployment}-{spec_hash}-{index}"


def render_service(deployment: Obj, settings: Settings) -> Obj:
    metadata = deployment["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": service_name(metadata["name"]),
            "namespace": metadata["namespace"],
            "labels": managed_labels(**{LABEL_DEPLOYMENT: metadata["name"]}),
            "ownerReferences": [owner_reference(deployment)],
        },
        "spec": {
            "selector": selector_labels(metadata["name"]),
            "ports": [{"name": "http", "port": 80, "targetPort": settings.server_port}],
        },
    }


@dataclass(frozen=True)
class QuotaVerdict:
    ok: bool
    message: str = ""


def check_quota(inputs: DeploymentInputs, spec: DeploymentSpec, desired: int) -> QuotaVerdict:
    """Would ``desired`` replicas fit the account's quota, next to what others hold?"""
    if inputs.account is None:
        return QuotaVerdict(True)
    quota = AccountSpec.model_validate(inputs.account.get("spec") or {}).quota
    name = inputs.deployment["metadata"]["name"]
    if quota.deployments is not None:
        live = [d for d in [*inputs.siblings, inputs.deployment] if not is_terminating(d)]
        order = [d["metadata"]["name"] for d in sorted(live, key=creation_key)]
        position = order.index(name) + 1 if name in order else len(order) + 1
        if position > quota.deployments:
            return QuotaVerdict(
                False,
                f"the account may have {quota.deployments} deployments and this is number "
                f"{position}",
            )
    per_replica = accelerators_per_replica(spec)
    needed = desired * per_replica
    if not needed:
        return QuotaVerdict(True)
    used_total, used_type = 0, 0
    accelerator = spec.accelerator_type.value
    for pod in inputs.other_pods:
        if is_terminating(pod) or pod_failed(pod):
            continue
        pod_type, count = gpus_of_pod(pod)
        used_total += count
        if pod_type == accelerator:
            used_type += count
    if quota.gpus is not None and used_total + needed > quota.gpus:
        return QuotaVerdict(
            False,
            f"needs {needed} GPUs ({desired} replicas x {per_replica}), "
            f"{max(quota.gpus - used_total, 0)} of {quota.gpus} left",
        )
    per_type = quota.gpus_per_accelerator_type or {}
    if accelerator in per_type and used_type + needed > per_type[accelerator]:
        limit = per_type[accelerator]
        return QuotaVerdict(
            False,
            f"needs {needed} {accelerator} ({desired} replicas x {per_replica}), "
            f"{max(limit - used_type, 0)} of {limit} left",
        )
    return QuotaVerdict(True)


def check_base_model(inputs: DeploymentInputs, ref: Ref) -> tuple[DeploymentState, str] | None:
    """(state, why) when the base model cannot be served (yet), or None."""
    shown = ref.full_name("models")
    base = inputs.base_model
    failed = DeploymentState.FAILED
    if base is None:
        return failed, f"base model {shown} does not exist"
    namespace = inputs.deployment["metadata"]["namespace"]
    base_spec = base.get("spec") or {}
    if ref.namespace not in (namespace, inputs.settings.platform_account) and not base_spec.get(
        "public", False
    ):
        return failed, f"base model {shown} is in another account and is not public"
    # An EMBEDDING_MODEL is a base model too: the same server, the same arguments.
    servable = (ModelKind.HF_BASE_MODEL.value, ModelKind.EMBEDDING_MODEL.value)
    if base_spec.get("kind", ModelKind.HF_PEFT_ADDON.value) not in servable:
        return failed, (
            f"{shown} is a LoRA addon; serve it by deploying its base model with "
            "enableAddons and creating a DeployedModel (live merge is not supported yet)"
        )
    state = (base.get("status") or {}).get("state")
    if state == ModelState.FAILED.value:
        return failed, f"base model {shown} is FAILED: {(base.get('status') or {}).get('message')}"
    if state != ModelState.READY.value:
        # Applied together (kubectl apply -f dir/), the model may simply not be checked yet.
        return (
            DeploymentState.CREATING,
            f"waiting for base model {shown} ({state or 'not validated yet'})",
        )
    return None


def _plan_pods(
    inputs: DeploymentInputs, template: Obj, spec_hash: str, desired: int, may_grow: bool
) -> tuple[list[Obj], list[str]]:
    """Which pods to create and which to delete for one step of the rollout.

    Surge one: while old pods exist, at most desired + 1 live pods; an old pod is retired
    only when enough new ones are ready to keep ``desired`` replicas serving.
    """
    name = inputs.deployment["metadata"]["name"]
    live = [p for p in inputs.pods if not is_terminating(p)]
    failed = [p for p in live if pod_failed(p)]
    live = [p for p in live if not pod_failed(p)]
    current = [p for p in live if p["metadata"].get("labels", {}).get(LABEL_SPEC_HASH) == spec_hash]
    old = [p for p in live if p not in current]
    delete = [p["metadata"]["name"] for p in failed]

    # Too many current pods: drop the not-ready ones first, then the newest.
    if len(current) > desired:
        ordered = sorted(current, key=lambda p: (pod_ready(p), -_index(p)))
        extra = len(current) - desired
        surplus = sorted(ordered[:extra], key=lambda p: p["metadata"]["name"])
        delete += [p["metadata"]["name"] for p in surplus]
        current = [p for p in current if p not in surplus]

    ready_current = sum(1 for p in current if pod_ready(p))
    ready_old = [p for p in old if pod_ready(p)]
    # Old pods that are not serving can go at once; ready ones only when covered.
    delete += [p["metadata"]["name"] for p in old if not pod_ready(p)]
    removable = max(0, ready_current + len(ready_old) - desired)
    if desired == 0:
        removable = len(ready_old)
    retired = sorted(ready_old, key=creation_key)[:removable]
    delete += [p["metadata"]["name"] for p in retired]
    remaining_old = len(ready_old) - len(retired)

    create: list[Obj] = []
    missing = desired - len(current)
    if missing > 0 and may_grow:
        if remaining_old:
            missing = min(missing, max(0, desired + 1 - len(current) - remaining_old))
        used = {_index(p) for p in current} | {_index(p) for p in failed}
        index = 0
        while len(create) < missing:
            if index not in used:
                pod = json.loads(json.dumps(template))
                pod["metadata"]["name"] = pod_name(name, spec_hash, index)
                pod["metadata"]["labels"][LABEL_SPEC_HASH] = spec_hash
                create.append(pod)
            index += 1
    return create, delete


def _index(pod: Obj) -> int:
    try:
        return int(pod["metadata"]["name"].rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return -1


def plan_deployment(inputs: DeploymentInputs) -> DeploymentPlan:
    deployment = inputs.deployment
    metadata = deployment["metadata"]
    name, namespace = metadata["name"], metadata["namespace"]
    generation = metadata.get("generation")
    plan = DeploymentPlan()
    previous = deployment.get("status") or {}
    endpoint = f"http://{service_name(name)}.{namespace}.svc"

    def finish(state: DeploymentState, conds: list[Cond], message: str, **extra: Any) -> None:
        pods = [p for p in inputs.pods if not is_terminating(p)]
        ready = sum(1 for p in pods if pod_ready(p))
        pending = sum(1 for p in pods if not pod_scheduled(p))
        plan.status = {
            "state": state.value,
            "observedGeneration": generation,
            "message": message,
            "replicaCount": len(pods),
            "desiredReplicaCount": extra.get("desired", 0),
            "replicaStats": {
                "pendingSchedulingReplicaCount": pending,
                "downloadingModelReplicaCount": 0,
                "initializingReplicaCount": len(pods) - ready - pending,
                "readyReplicaCount": ready,
            },
            "endpoint": endpoint,
            "selector": ",".join(f"{k}={v}" for k, v in selector_labels(name).items()),
            "conditions": set_conditions(
                previous.get("conditions"), conds, generation=generation, now=inputs.now
            ),
        }

    if is_terminating(deployment):
        finish(
            DeploymentState.DELETING,
            [Cond("Ready", False, "Deleting", "being deleted")],
            "deployment is being deleted",
        )
        return plan

    def refuse(refusal: Refusal, desired: int = 0) -> DeploymentPlan:
        """FAILED with the reason, and nothing created: a refused spec starts no replica
        (pods of an earlier spec are left as they are until the spec is fixed)."""
        finish(
            DeploymentState.FAILED,
            [Cond("Ready", False, refusal.reason, refusal.message)],
            refusal.message,
            desired=desired,
        )
        if _cond_reason(previous, "Ready") != refusal.reason:
            plan.events.append(("Warning", refusal.reason, refusal.message))
        return plan

    try:
        spec = DeploymentSpec.model_validate(deployment.get("spec") or {})
        base_ref = resolve_ref(spec.base_model, "models", namespace)
    except (ValidationError, ValueError) as error:
        message = f"invalid spec: {error}"
        finish(DeploymentState.FAILED, [Cond("Ready", False, "InvalidSpec", message)], message)
        return plan

    desired = desired_replicas(spec)
    refusal = check_engine(
        spec.serving_engine,
        spec.precision,
        spec.accelerator_type.value,
        accelerators_per_replica(spec),
    )
    if refusal is not None:
        return refuse(refusal, desired)
    if inputs.api_key_secret is None:
        if not inputs.fresh_api_key:
            raise ValueError("fresh_api_key: required when the API-key Secret does not exist")
        plan.api_key_secret = render_api_key_secret(deployment, inputs.fresh_api_key)

    problem = check_base_model(inputs, base_ref)
    if problem:
        state, why = problem
        finish(state, [Cond("Ready", False, "BaseModelNotReady", why)], why, desired=desired)
        if state == DeploymentState.FAILED and previous.get("state") != state.value:
            plan.events.append(("Warning", "BaseModelNotReady", why))
        return plan
    assert inputs.base_model is not None
    if spec.serving_engine == ServingEngine.VLLM:
        try:
            source = (inputs.base_model.get("spec") or {})["source"]["uri"]
            vllm_source(source, inputs.settings.pvc_mount_root)
        except ValueError as error:
            return refuse(Refusal("UnsupportedModelSource", str(error)), desired)

    plan.service = render_service(deployment, inputs.settings)
    plan.base_deployed_model = render_base_deployed_model(deployment, spec.base_model, base_ref)
    template = render_pod_template(deployment, spec, inputs.base_model, base_ref, inputs.settings)
    spec_hash = template_hash(template)

    quota = check_quota(inputs, spec, desired)
    quota_cond = (
        Cond("QuotaExceeded", False, "WithinQuota", "within the account's quota")
        if quota.ok
        else Cond("QuotaExceeded", True, "QuotaExceeded", quota.message)
    )
    create, delete = _plan_pods(inputs, template, spec_hash, desired, may_grow=quota.ok)
    plan.create, plan.delete = create, delete
    if not quota.ok and (
        previous.get("conditions") is None or _cond_status(previous, "QuotaExceeded") != "True"
    ):
        plan.events.append(("Warning", "QuotaExceeded", quota.message))

    live = [p for p in inputs.pods if not is_terminating(p) and not pod_failed(p)]
    current = [p for p in live if p["metadata"].get("labels", {}).get(LABEL_SPEC_HASH) == spec_hash]
    old = [p for p in live if p not in current]
    ready_current = sum(1 for p in current if pod_ready(p))
    ready_all = sum(1 for p in live if pod_ready(p))
    crashing = [
        reason
        for p in inputs.pods
        if not pod_ready(p) and (reason := pod_failure_reason(p)) is not None
    ]

    rolled_out = ready_current >= desired and not old
    if not quota.ok and ready_all < desired:
        state = DeploymentState.FAILED
        message = f"quota exceeded: {quota.message}"
        ready = Cond("Ready", ready_all > 0 and desired > 0, "QuotaExceeded", message)
    elif rolled_out:
        state = DeploymentState.READY
        message = f"{ready_current}/{desired} replicas ready"
        ready = Cond("Ready", True, "ReplicasReady", message)
    elif old:
        state = DeploymentState.UPDATING
        message = f"rolling out: {ready_current}/{desired} replicas of the new spec ready"
        ready = Cond("Ready", ready_all > 0, "RollingOut", message)
    elif crashing and ready_all == 0:
        state = DeploymentState.FAILED
        message = f"model server failing: {crashing[0]}"
        ready = Cond("Ready", False, "ServerFailing", message)
    elif ready_all > 0:
        state = DeploymentState.READY
        message = f"{ready_all}/{desired} replicas ready; starting the rest"
        ready = Cond("Ready", True, "PartiallyReady", message)
    else:
        state = DeploymentState.CREATING
        message = f"starting {desired} replica{'s' if desired != 1 else ''}"
        ready = Cond("Ready", False, "ReplicasStarting", message)
    progressing = Cond(
        "Progressing",
        not rolled_out,
        "RollingOut" if not rolled_out else "RolledOut",
        f"spec hash {spec_hash}",
    )
    finish(state, [ready, progressing, quota_cond], message, desired=desired)
    previous_state = previous.get("state")
    if previous_state != state.value and state in (DeploymentState.READY, DeploymentState.FAILED):
        plan.events.append(
            (
                "Normal" if state == DeploymentState.READY else "Warning",
                state.value.title(),
                message,
            )
        )
    return plan


def _cond_status(status: dict[str, Any], kind: str) -> str | None:
    for condition in status.get("conditions") or []:
        if condition.get("type") == kind:
            return str(condition.get("status"))
    return None


def _cond_reason(status: dict[str, Any], kind: str) -> str | None:
    for condition in status.get("conditions") or []:
        if condition.get("type") == kind:
            return str(condition.get("reason"))
    return None
