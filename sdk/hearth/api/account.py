"""Account: a tenant. Cluster-scoped; owns the namespace of the same name."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import ConfigDict, Field

from ._base import (
    AGE,
    NAME_FIELD_PATH,
    AcceleratorType,
    AcceleratorUsage,
    CamelModel,
    Description,
    DisplayName,
    KindInfo,
    PrinterColumn,
    Resource,
    StatusBase,
    StrEnum,
    cel,
    object_name_rule,
    rules,
    state_column,
)

_ACCELERATOR_KEYS = ", ".join(f"'{a.value}'" for a in AcceleratorType if a.value != "CPU")


class AccountState(StrEnum):
    """Fireworks' Account states."""

    STATE_UNSPECIFIED = "STATE_UNSPECIFIED"
    CREATING = "CREATING"
    READY = "READY"
    UPDATING = "UPDATING"
    DELETING = "DELETING"


class SuspendState(StrEnum):
    UNSUSPENDED = "UNSUSPENDED"
    FAILED_PAYMENTS = "FAILED_PAYMENTS"
    CREDIT_DEPLETED = "CREDIT_DEPLETED"
    MONTHLY_SPEND_LIMIT_EXCEEDED = "MONTHLY_SPEND_LIMIT_EXCEEDED"
    BLOCKED_BY_ABUSE_RULE = "BLOCKED_BY_ABUSE_RULE"


class AccountQuota(CamelModel):
    """Limits for everything the account's resources hold. An unset limit means no limit."""

    gpus: int | None = Field(
        default=None, ge=0, description="GPUs held by all replicas and jobs, of any type."
    )
    gpus_per_accelerator_type: dict[str, int] | None = Field(
        default=None,
        description="GPUs per acceleratorType, e.g. {NVIDIA_H100_80GB: 8}.",
        json_schema_extra={
            "additionalProperties": {"type": "integer", "minimum": 0},
            "maxProperties": 16,
            **rules(
                cel(
                    f"self.all(k, k in [{_ACCELERATOR_KEYS}])",
                    "keys of gpusPerAcceleratorType must be GPU acceleratorType values "
                    "such as NVIDIA_H100_80GB",
                )
            ),
        },
    )
    deployments: int | None = Field(default=None, ge=0, description="Deployments in the account.")
    lora_addons: int | None = Field(
        default=None, ge=0, description="LoRA addon Models (HF_PEFT_ADDON) in the account."
    )
    concurrent_fine_tuning_jobs: int | None = Field(
        default=None, ge=0, description="FineTuningJobs running at the same time."
    )
    serverless_tokens_per_minute: int | None = Field(
        default=None, ge=0, description="Tokens per minute on serverless models."
    )
    serverless_requests_per_minute: int | None = Field(
        default=None, ge=0, description="Requests per minute on serverless models."
    )


class ArtifactStorage(CamelModel):
    """The account's artifact volume (datasets, trained adapters)."""

    storage_class_name: str | None = Field(
        default=None, max_length=253, description="StorageClass; the cluster default if unset."
    )
    size: str = Field(
        default="20Gi",
        pattern=r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)?$",
        max_length=32,
        description="Requested size as a Kubernetes quantity.",
    )


class AccountSpec(CamelModel):
    display_name: DisplayName | None = None
    email: str | None = Field(
        default=None,
        max_length=254,
        pattern=r"^[^@\s]+@[^@\s]+$",
        description="Contact for notifications.",
    )
    suspend_state: SuspendState = Field(
        default=SuspendState.UNSUSPENDED,
        description="Anything but UNSUSPENDED stops inference (HTTP 412) and new work.",
    )
    quota: AccountQuota = Field(
        default_factory=AccountQuota,
        description="Resource limits; unset limits are unlimited.",
        json_schema_extra={"default": {}},
    )
    artifact_storage: ArtifactStorage = Field(
        default_factory=ArtifactStorage,
        description="The PersistentVolumeClaim for datasets and trained adapters.",
        json_schema_extra={"default": {}},
    )
    description: Description | None = None


class AccountUsage(CamelModel):
    model_config = ConfigDict(extra="ignore")

    gpus: int = Field(default=0, ge=0, description="GPUs requested by replicas and jobs.")
    gpus_per_accelerator_type: dict[str, int] = Field(default_factory=dict)
    deployments: int = Field(default=0, ge=0)
    lora_addons: int = Field(default=0, ge=0)
    fine_tuning_jobs: int = Field(default=0, ge=0, description="Jobs running now.")


class TokenUsage(CamelModel):
    """Inference through the gateway this billing period, from the usage ledger."""

    model_config = ConfigDict(extra="ignore")

    period_start: datetime | None = Field(
        default=None, description="Start of the period summed: the current UTC month."
    )
    requests: int = Field(default=0, description="Requests the gateway answered.")
    prompt_tokens: int = Field(default=0, description="Prompt tokens (cached ones included).")
    cached_tokens: int = Field(default=0, description="Prompt tokens served from the cache.")
    completion_tokens: int = Field(default=0, description="Generated tokens.")


class AccountStatus(StatusBase):
    state: AccountState = AccountState.STATE_UNSPECIFIED
    namespace: str | None = Field(default=None, description="The namespace this account owns.")
    usage: AccountUsage | None = Field(default=None, description="What the account holds now.")
    accelerator_usage: AcceleratorUsage | None = Field(
        default=None,
        description="GPU-seconds of the account's deployments this period (usage ledger).",
    )
    token_usage: TokenUsage | None = Field(
        default=None,
        description="Requests and tokens billed to the account this period (usage ledger).",
    )


class Account(Resource[AccountSpec, AccountStatus]):
    kind: Literal["Account"] = "Account"
    kind_info = KindInfo(
        plural="accounts",
        singular="account",
        short_names=("acct",),
        scope="Cluster",
        description=(
            "A Hearth account (Fireworks accounts/<id>): a tenant that owns the namespace of "
            "the same name, its quota and its users."
        ),
        printer_columns=(
            state_column(),
            PrinterColumn("Namespace", ".status.namespace"),
            PrinterColumn("GPUs", ".status.usage.gpus", "integer", "GPUs in use"),
            PrinterColumn("GPU-Quota", ".spec.quota.gpus", "integer", "GPU limit"),
            PrinterColumn("Deployments", ".status.usage.deployments", "integer", priority=1),
            PrinterColumn("Suspend", ".spec.suspendState", priority=1),
            AGE,
        ),
        root_rules=(
            object_name_rule("Account"),
            cel(
                "!self.metadata.name.startsWith('kube-') && self.metadata.name != 'default' "
                "&& self.metadata.name != 'hearth-system'",
                "account IDs may not take a system namespace: 'default', 'kube-*' or "
                "'hearth-system'",
                field_path=NAME_FIELD_PATH,
            ),
        ),
    )
