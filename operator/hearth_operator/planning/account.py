"""Account -> Namespace, ResourceQuota, NetworkPolicy, artifact PVC, the operator's
Secret access; usage and status."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hearth.api import AccountSpec, AccountState, ModelKind

from ..conditions import Cond, set_conditions
from ..constants import (
    ACCOUNT_ARTIFACT_CLAIM,
    ACCOUNT_NETWORK_POLICY_NAME,
    ACCOUNT_QUOTA_NAME,
    ANNOTATION_ACCELERATOR_TYPE,
    LABEL_ACCOUNT,
    LABEL_NAME,
    LABEL_PART_OF,
    OPERATOR_SECRETS_ROLE,
    SERVER_APP,
)
from ..settings import Settings
from .common import Obj, is_terminating, managed_labels, owner_reference


@dataclass(frozen=True)
class AccountPlan:
    namespace: Obj
    children: list[Obj]  # namespaced in the account namespace


def gpu_resource_for(accelerator_type: str, settings: Settings) -> str | None:
    placement = settings.accelerators.get(accelerator_type)
    return placement.resource if placement else "nvidia.com/gpu"


def quota_hard(spec: AccountSpec, settings: Settings) -> dict[str, str]:
    """ResourceQuota limits: GPU requests per vendor resource and object counts.

    A ResourceQuota cannot tell accelerator types of one vendor apart; the operator's own
    check (``deployment`` planner) enforces per-type limits and the cross-vendor total.
    """
    hard: dict[str, str] = {}
    quota = spec.quota
    per_vendor: dict[str, int] = {}
    for accelerator, count in (quota.gpus_per_accelerator_type or {}).items():
        resource = gpu_resource_for(accelerator, settings)
        if resource:
            per_vendor[resource] = per_vendor.get(resource, 0) + count
    vendors = {p.resource for p in settings.accelerators.values() if p.resource}
    for resource in sorted(vendors):
        limit = per_vendor.get(resource)
        if quota.gpus is not None:
            limit = quota.gpus if limit is None else min(limit, quota.gpus)
        if limit is not None:
            hard[f"requests.{resource}"] = str(limit)
    if quota.deployments is not None:
        hard["count/deployments.hearth.dev"] = str(quota.deployments)
    return hard


def plan_account(account: Obj, settings: Settings) -> AccountPlan:
    name = account["metadata"]["name"]
    spec = AccountSpec.model_validate(account.get("spec") or {})
    owner = owner_reference(account)
    labels = managed_labels(**{LABEL_ACCOUNT: name})
    namespace = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": labels, "ownerReferences": [owner]},
    }

    def child(api_version: str, kind: str, child_name: str, body: dict[str, Any]) -> Obj:
        metadata = {"name": child_name, "namespace": name, "labels": labels}
        metadata["ownerReferences"] = [owner]
        return {"apiVersion": api_version, "kind": kind, "metadata": metadata, **body}

    children = []
    hard = quota_hard(spec, settings)
    if hard:
        children.append(child("v1", "ResourceQuota", ACCOUNT_QUOTA_NAME, {"spec": {"hard": hard}}))
    children.append(
        child(
            "networking.k8s.io/v1",
            "NetworkPolicy",
            ACCOUNT_NETWORK_POLICY_NAME,
            {
                "spec": {
                    # Model servers answer only the gateway and the operator, which run in
                    # the operator's namespace and carry the part-of label.
                    "podSelector": {"matchLabels": {LABEL_NAME: SERVER_APP}},
                    "policyTypes": ["Ingress"],
                    "ingress": [
                        {
                            "from": [
                                {
                                    "namespaceSelector": {
                                        "matchLabels": {
                                            "kubernetes.io/metadata.name": settings.namespace
                                        }
                                    },
                                    "podSelector": {"matchLabels": {LABEL_PART_OF: "hearth"}},
                                }
                            ]
                        }
                    ],
                }
            },
        )
    )
    storage = spec.artifact_storage
    claim_spec: dict[str, Any] = {
        "accessModes": list(settings.artifact_access_modes),
        "resources": {"requests": {"storage": storage.size}},
    }
    if storage.storage_class_name:
        claim_spec["storageClassName"] = storage.storage_class_name
    children.append(
        child("v1", "PersistentVolumeClaim", ACCOUNT_ARTIFACT_CLAIM, {"spec": claim_spec})
    )
    children.append(
        child(
            "rbac.authorization.k8s.io/v1",
            "RoleBinding",
            OPERATOR_SECRETS_ROLE,
            secrets_access(settings),
        )
    )
    return AccountPlan(namespace=namespace, children=children)


def secrets_access(settings: Settings) -> dict[str, Any]:
    """The operator may read and create Secrets (Deployments' API tokens) in account
    namespaces only: its ClusterRole has no Secret rule, this RoleBinding grants it here."""
    return {
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": OPERATOR_SECRETS_ROLE,
        },
        "subjects": [
            {
                "kind": "ServiceAccount",
                "name": settings.service_account,
                "namespace": settings.namespace,
            }
        ],
    }


@dataclass(frozen=True)
class Usage:
    gpus: int = 0
    gpus_per_accelerator_type: dict[str, int] = field(default_factory=dict)
    deployments: int = 0
    lora_addons: int = 0
    fine_tuning_jobs: int = 0

    def to_status(self) -> dict[str, Any]:
        return {
            "gpus": self.gpus,
            "gpusPerAcceleratorType": dict(sorted(self.gpus_per_accelerator_type.items())),
            "deployments": self.deployments,
            "loraAddons": self.lora_addons,
            "fineTuningJobs": self.fine_tuning_jobs,
        }


def gpus_of_pod(pod: Obj) -> tuple[str | None, int]:
    """(acceleratorType, GPUs requested) of one of our pods."""
    accelerator = pod.get("metadata", {}).get("annotations", {}).get(ANNOTATION_ACCELERATOR_TYPE)
    total = 0
    for container in pod.get("spec", {}).get("containers", []):
        requests = (container.get("resources") or {}).get("requests") or {}
        for key, value in requests.items():
            if key.endswith("/gpu"):
                total += int(value)
    return accelerator, total


def account_usage(deployments: list[Obj], models: list[Obj], pods: list[Obj]) -> Usage:
    """What an account holds now: GPUs of live pods, deployments, LoRA addon models."""
    per_type: dict[str, int] = {}
    gpus = 0
    for pod in pods:
        if is_terminating(pod) or pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
            continue
        accelerator, count = gpus_of_pod(pod)
        if count:
            gpus += count
            key = accelerator or "ACCELERATOR_TYPE_UNSPECIFIED"
            per_type[key] = per_type.get(key, 0) + count
    addons = sum(
        1
        for m in models
        if (m.get("spec") or {}).get("kind", ModelKind.HF_PEFT_ADDON.value)
        == ModelKind.HF_PEFT_ADDON.value
    )
    return Usage(
        gpus=gpus,
        gpus_per_accelerator_type=per_type,
        deployments=sum(1 for d in deployments if not is_terminating(d)),
        lora_addons=addons,
    )


def account_status(
    account: Obj,
    *,
    namespace: Obj | None,
    usage: Usage,
    now: datetime,
) -> dict[str, Any]:
    metadata = account["metadata"]
    generation = metadata.get("generation")
    previous = account.get("status") or {}
    if is_terminating(account):
        state, ready = (
            AccountState.DELETING,
            Cond("Ready", False, "Deleting", "account is being deleted"),
        )
    elif namespace is None or is_terminating(namespace):
        state = AccountState.CREATING
        ready = Cond("Ready", False, "NamespacePending", f"namespace {metadata['name']} not ready")
    else:
        state = AccountState.READY
        ready = Cond("Ready", True, "NamespaceReady", f"namespace {metadata['name']} is ready")
    spec = AccountSpec.model_validate(account.get("spec") or {})
    over = quota_overuse(spec, usage)
    quota_cond = (
        Cond("QuotaExceeded", True, "OverQuota", "; ".join(over))
        if over
        else Cond("QuotaExceeded", False, "WithinQuota", "usage is within quota")
    )
    message = ready.message if not over else f"{ready.message}; over quota: {'; '.join(over)}"
    return {
        "state": state.value,
        "namespace": metadata["name"],
        "usage": usage.to_status(),
        "observedGeneration": generation,
        "message": message,
        "conditions": set_conditions(
            previous.get("conditions"), [ready, quota_cond], generation=generation, now=now
        ),
    }


def quota_overuse(spec: AccountSpec, usage: Usage) -> list[str]:
    """Human-readable lines for every limit the usage exceeds (quota lowered below use)."""
    quota = spec.quota
    lines = []
    if quota.gpus is not None and usage.gpus > quota.gpus:
        lines.append(f"{usage.gpus} GPUs in use, quota {quota.gpus}")
    for accelerator, limit in (quota.gpus_per_accelerator_type or {}).items():
        used = usage.gpus_per_accelerator_type.get(accelerator, 0)
        if used > limit:
            lines.append(f"{used} {accelerator} in use, quota {limit}")
    if quota.deployments is not None and usage.deployments > quota.deployments:
        lines.append(f"{usage.deployments} deployments, quota {quota.deployments}")
    if quota.lora_addons is not None and usage.lora_addons > quota.lora_addons:
        lines.append(f"{usage.lora_addons} LoRA addons, quota {quota.lora_addons}")
    return lines
