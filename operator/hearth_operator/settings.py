"""Operator settings: from environment variables, optionally a YAML file, or tests."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml


@dataclass(frozen=True)
class AcceleratorPlacement:
    """How pods asking for one acceleratorType are scheduled."""

    resource: str | None  # extended resource to request, e.g. nvidia.com/gpu; None for CPU
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: tuple[dict[str, Any], ...] = ()


def _nvidia(product: str) -> AcceleratorPlacement:
    # Labels set by NVIDIA GPU feature discovery (gpu-operator) on each GPU node.
    return AcceleratorPlacement(
        resource="nvidia.com/gpu",
        node_selector={"nvidia.com/gpu.product": product},
        tolerations=({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},),
    )


def _amd(product: str) -> AcceleratorPlacement:
    # Labels set by the AMD GPU operator's node labeller.
    return AcceleratorPlacement(
        resource="amd.com/gpu",
        node_selector={"amd.com/gpu.product-name": product},
        tolerations=({"key": "amd.com/gpu", "operator": "Exists", "effect": "NoSchedule"},),
    )


DEFAULT_ACCELERATORS: dict[str, AcceleratorPlacement] = {
    "NVIDIA_A100_80GB": _nvidia("NVIDIA-A100-SXM4-80GB"),
    "NVIDIA_A100_40GB": _nvidia("NVIDIA-A100-SXM4-40GB"),
    "NVIDIA_H100_80GB": _nvidia("NVIDIA-H100-80GB-HBM3"),
    "NVIDIA_H200_141GB": _nvidia("NVIDIA-H200"),
    "NVIDIA_B200_180GB": _nvidia("NVIDIA-B200"),
    "NVIDIA_B300_288GB": _nvidia("NVIDIA-B300"),
    "NVIDIA_A10G_24GB": _nvidia("NVIDIA-A10G"),
    "NVIDIA_L4_24GB": _nvidia("NVIDIA-L4"),
    "AMD_MI300X_192GB": _amd("AMD_Instinct_MI300X"),
    "AMD_MI325X_256GB": _amd("AMD_Instinct_MI325X"),
    "AMD_MI350X_288GB": _amd("AMD_Instinct_MI350X"),
    "ACCELERATOR_TYPE_UNSPECIFIED": AcceleratorPlacement(resource="nvidia.com/gpu"),
    "CPU": AcceleratorPlacement(resource=None),
}


@dataclass(frozen=True)
class Settings:
    #: The operator's own namespace; no account may take it.
    namespace: str = "hearth-system"
    #: The operator's ServiceAccount (in ``namespace``): account namespaces bind it the
    #: Secret access it needs there.
    service_account: str = "hearth-operator"
    #: Namespaces to watch; empty means the whole cluster.
    watch_namespaces: tuple[str, ...] = ()
    #: Image and command of the model server container.
    server_image: str = "ghcr.io/hearth-dev/hearth-server:0.1.0"
    server_command: tuple[str, ...] = ("hearth-server",)
    server_port: int = 8000
    #: Requests of a CPU replica (GPU replicas ask for their accelerators).
    cpu_requests: dict[str, str] = field(default_factory=lambda: {"cpu": "1", "memory": "2Gi"})
    accelerators: dict[str, AcceleratorPlacement] = field(
        default_factory=lambda: dict(DEFAULT_ACCELERATORS)
    )
    #: Where PersistentVolumeClaims are mounted in pods (pvc://claim/path resolves under it).
    pvc_mount_root: str = "/mnt/pvc"
    #: Where the model server keeps converted weights.
    model_cache_path: str = "/var/cache/hearth"
    #: PVC for the model cache; an emptyDir when unset.
    model_cache_claim: str | None = None
    #: The account holding the shared serverless catalogue.
    platform_account: str = "hearth"
    #: Artifact volume access modes (ReadWriteMany lets trainers and servers share it).
    artifact_access_modes: tuple[str, ...] = ("ReadWriteOnce",)
    #: Seconds between periodic re-checks (safety net besides watch events).
    resync_seconds: float = 30.0
    #: Seconds a load_lora_adapter call may take.
    adapter_load_timeout: float = 120.0
    #: Extra env for every server container (e.g. HF_HOME).
    server_env: dict[str, str] = field(default_factory=dict)
    #: vLLM's OpenAI server, for Deployments with servingEngine VLLM. The command gets the
    #: model and the flags derived from the spec (planning/vllm.py) as its arguments.
    vllm_image: str = "vllm/vllm-openai:v0.11.0"
    vllm_command: tuple[str, ...] = ("vllm", "serve")
    #: Sequences one vLLM replica runs at once (--max-num-seqs; vLLM's own default), and so
    #: the capacity the autoscaler's ``default`` load target is a fraction of for them.
    vllm_max_num_seqs: int = 256
    #: Extra env for every vLLM container (e.g. HF_TOKEN, HF_HUB_OFFLINE).
    vllm_env: dict[str, str] = field(default_factory=dict)
    #: Image and command of the trainer (fine-tuning and dataset validation pods).
    trainer_image: str = "ghcr.io/hearth-dev/hearth-trainer:0.1.0"
    trainer_command: tuple[str, ...] = ("hearth-trainer",)
    trainer_env: dict[str, str] = field(default_factory=dict)
    #: Where ConfigMap datasets are mounted in training pods.
    dataset_mount_root: str = "/mnt/datasets"
    #: Restarts of a training pod before the job is FAILED (it resumes from a checkpoint).
    trainer_backoff_limit: int = 2
    #: The built-in autoscaler (controllers/autoscaler.py). Off, replicas change only
    #: through the scale subresource (kubectl scale, the gateway, an HPA or KEDA).
    autoscaler_enabled: bool = True
    #: Seconds between two reads of every ready replica's /metrics.
    autoscaler_interval: float = 5.0
    #: Seconds one /metrics read may take; a replica that does not answer in time is
    #: "missing" and its Deployment holds steady.
    autoscaler_scrape_timeout: float = 2.0
    #: Requests one replica runs at once (hearth-server --max-num-seqs): the capacity the
    #: ``default`` load target is a fraction of.
    autoscaler_replica_concurrency: int = 16
    #: Multiplies every autoscalingPolicy window. Below 1 only in tests and demos: the CRD
    #: refuses a scaleToZeroWindow under 5 minutes.
    autoscaler_window_factor: float = 1.0
    #: The usage ledger the operator writes GPU-seconds into (controllers/metering.py): the
    #: gateway's (postgresql://..., or sqlite:///path on one machine). Unset: no metering.
    #: Environment: HEARTH_LEDGER_URL.
    ledger_url: str | None = None
    #: Seconds between two metering passes (replica time written, statuses summed); a
    #: deleted replica's last seconds are written by the next pass after its deletion.
    metering_interval: float = 30.0

    def with_overrides(self, **changes: Any) -> Settings:
        return replace(self, **changes)


_ENV_PREFIX = "HEARTH_OPERATOR_"
#: The ledger's URL: one name for one ledger, whichever component reads it (the gateway
#: reads HEARTH_GATEWAY_LEDGER_URL or --ledger-url; in a chart both come from one Secret).
LEDGER_URL_ENV = "HEARTH_LEDGER_URL"


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    """Settings from ``HEARTH_OPERATOR_CONFIG`` (a YAML file) and ``HEARTH_OPERATOR_*``."""
    env = dict(os.environ if environ is None else environ)
    values: dict[str, Any] = {}
    config_file = env.get(f"{_ENV_PREFIX}CONFIG")
    if config_file:
        loaded = yaml.safe_load(Path(config_file).read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{config_file}: expected a mapping of settings")
        values.update(loaded)
    simple = {
        "NAMESPACE": "namespace",
        "SERVICE_ACCOUNT": "service_account",
        "SERVER_IMAGE": "server_image",
        "TRAINER_IMAGE": "trainer_image",
        "VLLM_IMAGE": "vllm_image",
        "PVC_MOUNT_ROOT": "pvc_mount_root",
        "PLATFORM_ACCOUNT": "platform_account",
        "MODEL_CACHE_CLAIM": "model_cache_claim",
    }
    for suffix, key in simple.items():
        if env.get(_ENV_PREFIX + suffix):
            values[key] = env[_ENV_PREFIX + suffix]
    if env.get(LEDGER_URL_ENV):
        values["ledger_url"] = env[LEDGER_URL_ENV]
    if env.get(f"{_ENV_PREFIX}WATCH_NAMESPACES"):
        values["watch_namespaces"] = env[f"{_ENV_PREFIX}WATCH_NAMESPACES"].split(",")
    for name in ("SERVER_COMMAND", "TRAINER_COMMAND", "VLLM_COMMAND"):
        if env.get(_ENV_PREFIX + name):
            values[name.lower()] = json.loads(env[_ENV_PREFIX + name])
    return settings_from_mapping(values)


def settings_from_mapping(values: dict[str, Any]) -> Settings:
    """Build settings from a mapping with snake_case keys, checking names and types."""
    known = set(Settings.__dataclass_fields__)
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown operator settings: {', '.join(unknown)}")
    converted = dict(values)
    for key in (
        "watch_namespaces",
        "server_command",
        "trainer_command",
        "vllm_command",
        "artifact_access_modes",
    ):
        if key in converted:
            converted[key] = tuple(converted[key])
    if "accelerators" in converted:
        accelerators = dict(DEFAULT_ACCELERATORS)
        for name, raw in converted["accelerators"].items():
            accelerators[name] = AcceleratorPlacement(
                resource=raw.get("resource"),
                node_selector=dict(raw.get("nodeSelector", {})),
                tolerations=tuple(raw.get("tolerations", ())),
            )
        converted["accelerators"] = accelerators
    return Settings(**converted)
