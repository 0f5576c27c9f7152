"""Deployment: replicas of a model server (hearth-server or vLLM) serving one base model and,
optionally, LoRA addons."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import ConfigDict, Field

from ._base import (
    AGE,
    DEFAULT_ACCELERATOR,
    QUANTIZED_PRECISIONS,
    REFERENCE_MAX_LENGTH,
    AcceleratorType,
    AcceleratorUsage,
    CamelModel,
    Description,
    DisplayName,
    Duration,
    KindInfo,
    Precision,
    PrinterColumn,
    Resource,
    ScaleSubresource,
    StatusBase,
    StrEnum,
    cel,
    object_name_rule,
    reference_pattern,
    rules,
    state_column,
)


class DeploymentState(StrEnum):
    """Fireworks' Deployment states, derived from the replicas and the spec."""

    STATE_UNSPECIFIED = "STATE_UNSPECIFIED"
    CREATING = "CREATING"
    READY = "READY"
    DELETING = "DELETING"
    FAILED = "FAILED"
    UPDATING = "UPDATING"
    DELETED = "DELETED"


class ServingEngine(StrEnum):
    """The model server a Deployment's replicas run (a Hearth extension; Fireworks has one)."""

    #: hearth-server: CPU or one GPU per replica, multi-LoRA, int8 on CPU.
    HEARTH = "HEARTH"
    #: vLLM's OpenAI server: GPU types only, tensor parallel over acceleratorCount.
    VLLM = "VLLM"


class AutoscalingPolicy(CamelModel):
    """Fireworks' autoscaling windows and load targets."""

    scale_up_window: Duration = Field(
        default="30s",
        description="How long load must stay above target before adding a replica (<= 1h).",
        json_schema_extra=rules(
            cel("duration(self) <= duration('1h')", "scaleUpWindow must be at most 1h")
        ),
    )
    scale_down_window: Duration = Field(
        default="10m",
        description="How long load must stay below target before removing a replica (<= 1h).",
        json_schema_extra=rules(
            cel("duration(self) <= duration('1h')", "scaleDownWindow must be at most 1h")
        ),
    )
    scale_to_zero_window: Duration = Field(
        default="1h",
        description="Idle time before scaling to zero when minReplicaCount is 0 (>= 5m).",
        json_schema_extra=rules(
            cel("duration(self) >= duration('5m')", "scaleToZeroWindow must be at least 5m")
        ),
    )
    load_targets: dict[str, float] = Field(
        default_factory=lambda: {"default": 0.8},
        description=(
            "Target load per replica; keys default (0-1 fraction), "
            "tokens_generated_per_second, requests_per_second, concurrent_requests. "
            "With several, the largest replica requirement wins."
        ),
        json_schema_extra={
            "default": {"default": 0.8},
            "maxProperties": 4,
            **rules(
                cel(
                    "self.all(k, k in ['default', 'tokens_generated_per_second', "
                    "'requests_per_second', 'concurrent_requests'])",
                    "loadTargets keys are default, tokens_generated_per_second, "
                    "requests_per_second and concurrent_requests",
                ),
                cel(
                    "self.all(k, self[k] > 0.0)",
                    "every load target must be greater than 0",
                ),
                cel(
                    "!('default' in self) || self['default'] <= 1.0",
                    "loadTargets.default is a fraction of capacity between 0 and 1",
                ),
            ),
        },
    )


class DeploymentSpec(CamelModel):
    model_config = ConfigDict(
        json_schema_extra=rules(
            cel(
                "!has(self.maxReplicaCount) || self.maxReplicaCount >= self.minReplicaCount",
                "maxReplicaCount must be greater than or equal to minReplicaCount",
                field_path=".maxReplicaCount",
            ),
            cel(
                "!has(self.acceleratorCount) || "
                "(self.acceleratorType == 'CPU' ? self.acceleratorCount == 0 "
                ": self.acceleratorCount >= 1)",
                "acceleratorCount must be 0 for acceleratorType CPU and at least 1 for a GPU type",
                field_path=".acceleratorCount",
            ),
            cel(
                "!self.enableAddons || !has(self.precision) || !(self.precision in ["
                + ", ".join(f"'{p}'" for p in QUANTIZED_PRECISIONS)
                + "])",
                "addons cannot be enabled with quantized precisions (FP8/FP4/NF4)",
                field_path=".enableAddons",
            ),
            cel(
                "!has(self.servingEngine) || self.servingEngine != 'VLLM' "
                "|| self.acceleratorType != 'CPU'",
                "servingEngine VLLM needs a GPU acceleratorType (vLLM does not serve on CPU "
                "here); use servingEngine HEARTH for CPU",
                field_path=".servingEngine",
            ),
            cel(
                "self.numPeftHostCached >= self.numPeftDeviceCached",
                "numPeftHostCached (adapters cached in host memory) must be at least "
                "numPeftDeviceCached (adapters in active slots)",
                field_path=".numPeftHostCached",
            ),
        )
    )

    base_model: str = Field(
        pattern=reference_pattern("models"),
        max_length=REFERENCE_MAX_LENGTH,
        description="The base model to serve: an ID in this account or accounts/<a>/models/<m>.",
    )
    display_name: DisplayName | None = None
    description: Description | None = None
    min_replica_count: int = Field(default=0, ge=0, le=1000, description="Never fewer replicas.")
    max_replica_count: int | None = Field(
        default=None,
        ge=0,
        le=1000,
        description="Never more replicas; defaults to max(minReplicaCount, 1).",
    )
    replica_count: int | None = Field(
        default=None,
        ge=0,
        le=1000,
        description=(
            "Replicas wanted now, set through the scale subresource (kubectl scale) and "
            "clamped to [minReplicaCount, maxReplicaCount]; unset means minReplicaCount."
        ),
    )
    autoscaling_policy: AutoscalingPolicy = Field(
        default_factory=AutoscalingPolicy, json_schema_extra={"default": {}}
    )
    accelerator_type: AcceleratorType = Field(
        default=DEFAULT_ACCELERATOR,
        description="GPU model per replica (Fireworks enum), or CPU (Hearth extension).",
    )
    accelerator_count: int | None = Field(
        default=None,
        ge=0,
        le=64,
        description="Accelerators per replica; defaults to 1 (0 for CPU).",
    )
    precision: Precision | None = Field(
        default=None,
        description="Serving precision; unset lets the engine choose (the checkpoint's dtype "
        "on GPUs). HEARTH serves FP16, BF16, INT8 and INT4 (Hearth extensions, CPU only); "
        "VLLM serves FP16, BF16 and FP8. Others are refused with an UnsupportedPrecision "
        "condition.",
    )
    serving_engine: ServingEngine = Field(
        default=ServingEngine.HEARTH,
        description="Model server of the replicas (Hearth extension): HEARTH (hearth-server) "
        "or VLLM (vLLM's OpenAI server, GPU types only; acceleratorCount is its tensor "
        "parallel size).",
    )
    enable_addons: bool = Field(
        default=False, description="Allow LoRA addons (multi-LoRA) on this deployment."
    )
    num_peft_device_cached: int = Field(
        default=8,
        ge=1,
        le=256,
        description="Adapters in active slots, usable in the same batch (hearth-server "
        "--max-loras).",
    )
    num_peft_host_cached: int = Field(
        default=32,
        ge=1,
        le=4096,
        description="Adapters kept in host memory, swapped into slots as needed (--max-cpu-loras).",
    )
    max_peft_rank: int = Field(
        default=64,
        ge=4,
        le=64,
        description="Largest LoRA rank the deployment accepts (--max-lora-rank).",
    )
    max_context_length: int = Field(
        default=0, ge=0, description="Context length; 0 uses the model's own."
    )
    serverless: bool = Field(
        default=False,
        description="A shared deployment in the platform account, billed per token.",
    )


class ReplicaStats(CamelModel):
    """Replicas by phase: waiting for a node, loading the model, ready."""

    model_config = ConfigDict(extra="ignore")

    pending_scheduling_replica_count: int = 0
    downloading_model_replica_count: int = 0
    initializing_replica_count: int = 0
    ready_replica_count: int = 0


class AutoscalingStatus(CamelModel):
    """What the autoscaler last measured, against the policy's targets."""

    model_config = ConfigDict(extra="ignore")

    current_load: dict[str, float] = Field(
        default_factory=dict,
        description="Load per ready replica in the last sample, by loadTargets key.",
    )
    load_targets: dict[str, float] = Field(
        default_factory=dict, description="The targets the load is compared with."
    )
    recommended_replica_count: int | None = Field(
        default=None, ge=0, description="Replicas the last sample's load asks for."
    )
    sampled_replica_count: int = Field(
        default=0, ge=0, description="Ready replicas whose /metrics were read."
    )
    sample_time: datetime | None = Field(default=None, description="When the sample was taken.")


class DeploymentStatus(StatusBase):
    state: DeploymentState = DeploymentState.STATE_UNSPECIFIED
    replica_count: int = Field(default=0, ge=0, description="Replicas that exist now.")
    desired_replica_count: int = Field(default=0, ge=0, description="Replicas wanted.")
    replica_stats: ReplicaStats | None = None
    endpoint: str | None = Field(default=None, description="In-cluster URL of the Service.")
    selector: str | None = Field(default=None, description="Label selector of the replicas.")
    last_scale_time: datetime | None = Field(
        default=None,
        description="When the replica count last changed (autoscaler, scale from zero, or a "
        "manual scale).",
    )
    autoscaling: AutoscalingStatus | None = Field(
        default=None, description="The autoscaler's last load sample against its targets."
    )
    accelerator_usage: AcceleratorUsage | None = Field(
        default=None, description="GPU-seconds of this deployment this period (usage ledger)."
    )


class Deployment(Resource[DeploymentSpec, DeploymentStatus]):
    kind: Literal["Deployment"] = "Deployment"
    kind_info = KindInfo(
        plural="deployments",
        singular="deployment",
        short_names=("hdeploy", "hdep"),
        scope="Namespaced",
        description=(
            "A Hearth deployment (Fireworks accounts/<a>/deployments/<id>): replicas of "
            "hearth-server (or vLLM) for one base model, optionally with LoRA addons."
        ),
        printer_columns=(
            PrinterColumn("Base-Model", ".spec.baseModel"),
            state_column(),
            PrinterColumn("Ready", ".status.replicaStats.readyReplicaCount", "integer"),
            PrinterColumn("Replicas", ".status.replicaCount", "integer"),
            PrinterColumn("Accelerator", ".spec.acceleratorType"),
            PrinterColumn("Count", ".spec.acceleratorCount", "integer", priority=1),
            PrinterColumn("Engine", ".spec.servingEngine", priority=1),
            PrinterColumn("Addons", ".spec.enableAddons", "boolean", priority=1),
            PrinterColumn("Endpoint", ".status.endpoint", priority=1),
            AGE,
        ),
        scale=ScaleSubresource(
            spec_replicas_path=".spec.replicaCount",
            status_replicas_path=".status.replicaCount",
            label_selector_path=".status.selector",
        ),
        root_rules=(object_name_rule("Deployment"),),
    )
