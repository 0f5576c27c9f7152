"""FineTuningJob: supervised LoRA fine-tuning (Fireworks supervisedFineTuningJobs)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import ConfigDict, Field

from ._base import (
    AGE,
    DEFAULT_ACCELERATOR,
    REFERENCE_MAX_LENGTH,
    AcceleratorType,
    CamelModel,
    DisplayName,
    KindInfo,
    LoraRank,
    PrinterColumn,
    Resource,
    StatusBase,
    StrEnum,
    cel,
    object_name_rule,
    reference_pattern,
    rules,
    state_column,
)


class JobState(StrEnum):
    """Fireworks' JobState values that a supervised fine-tuning job goes through."""

    JOB_STATE_UNSPECIFIED = "JOB_STATE_UNSPECIFIED"
    JOB_STATE_CREATING = "JOB_STATE_CREATING"
    JOB_STATE_PENDING = "JOB_STATE_PENDING"
    JOB_STATE_VALIDATING = "JOB_STATE_VALIDATING"
    JOB_STATE_RUNNING = "JOB_STATE_RUNNING"
    JOB_STATE_WRITING_RESULTS = "JOB_STATE_WRITING_RESULTS"
    JOB_STATE_COMPLETED = "JOB_STATE_COMPLETED"
    JOB_STATE_EARLY_STOPPED = "JOB_STATE_EARLY_STOPPED"
    JOB_STATE_FAILED = "JOB_STATE_FAILED"
    JOB_STATE_CANCELLING = "JOB_STATE_CANCELLING"
    JOB_STATE_CANCELLED = "JOB_STATE_CANCELLED"


#: Spec fields that may change after creation; everything else is fixed once the job exists.
MUTABLE_JOB_FIELDS = ("cancelled",)


def _immutable_except_rule(field_names: list[str]) -> str:
    """CEL: every listed field is unchanged (present in both with equal values, or absent)."""
    checks = [
        f"(has(self.{f}) == has(oldSelf.{f}) && (!has(self.{f}) || self.{f} == oldSelf.{f}))"
        for f in field_names
    ]
    return " && ".join(checks)


class FineTuningJobSpec(CamelModel):
    dataset: str = Field(
        pattern=reference_pattern("datasets"),
        max_length=REFERENCE_MAX_LENGTH,
        description="Training data: a Dataset ID or accounts/<a>/datasets/<d>.",
    )
    base_model: str | None = Field(
        default=None,
        pattern=reference_pattern("models"),
        max_length=REFERENCE_MAX_LENGTH,
        description="The base model to tune (set this or warmStartFrom).",
    )
    warm_start_from: str | None = Field(
        default=None,
        pattern=reference_pattern("models"),
        max_length=REFERENCE_MAX_LENGTH,
        description="A LoRA addon to continue training from (set this or baseModel).",
    )
    output_model: str | None = Field(
        default=None,
        pattern=r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$",
        max_length=63,
        description="ID of the Model to create; defaults to the job's ID.",
    )
    display_name: DisplayName | None = None
    epochs: int = Field(default=1, ge=1, le=100, description="Passes over the dataset.")
    learning_rate: float = Field(default=1e-4, gt=0, le=1, description="Peak learning rate.")
    learning_rate_warmup_steps: int = Field(
        default=0, ge=0, description="Steps of linear warm-up to learningRate."
    )
    lora_rank: LoraRank = Field(default=8, description="LoRA rank, 4-64.")
    lora_alpha: int | None = Field(
        default=None, ge=1, le=1024, description="LoRA alpha; defaults to 2 x loraRank."
    )
    max_context_length: int = Field(
        default=8192,
        ge=16,
        le=131072,
        description="Longer examples are truncated (and counted in status).",
    )
    batch_size: int = Field(
        default=32768, ge=16, description="Tokens per batch (examples are packed)."
    )
    batch_size_samples: int | None = Field(
        default=None, ge=1, description="Examples per batch, if set."
    )
    gradient_accumulation_steps: int = Field(
        default=1, ge=1, le=1024, description="Batches per optimizer step."
    )
    optimizer_weight_decay: float = Field(default=0.0, ge=0, description="AdamW weight decay.")
    evaluation_dataset: str | None = Field(
        default=None,
        pattern=reference_pattern("datasets"),
        max_length=REFERENCE_MAX_LENGTH,
        description="Held-out data; when unset a split is carved out automatically.",
    )
    eval_auto_carveout: bool = Field(
        default=True, description="Carve an evaluation split when evaluationDataset is unset."
    )
    early_stop: bool = Field(
        default=False, description="Stop when the evaluation loss stops improving."
    )
    seed: int = Field(default=42, ge=0, description="Makes a run reproducible.")
    accelerator_type: AcceleratorType = Field(
        default=DEFAULT_ACCELERATOR, description="GPU model for the training pod, or CPU."
    )
    accelerator_count: int | None = Field(
        default=None, ge=0, le=64, description="Accelerators; defaults to 1 (0 for CPU)."
    )
    cancelled: bool = Field(
        default=False, description="Set true to cancel the job (cannot be undone)."
    )


# The rules need the field list, so they are attached after the class exists.
_IMMUTABLE_FIELDS = [
    info.alias or name
    for name, info in FineTuningJobSpec.model_fields.items()
    if name not in MUTABLE_JOB_FIELDS
]
FineTuningJobSpec.model_config["json_schema_extra"] = rules(
    cel(
        "has(self.baseModel) != has(self.warmStartFrom)",
        "set exactly one of baseModel and warmStartFrom",
    ),
    cel(
        "!has(self.acceleratorCount) || "
        "(self.acceleratorType == 'CPU' ? self.acceleratorCount == 0 "
        ": self.acceleratorCount >= 1)",
        "acceleratorCount must be 0 for acceleratorType CPU and at least 1 for a GPU type",
        field_path=".acceleratorCount",
    ),
    cel(
        _immutable_except_rule(_IMMUTABLE_FIELDS),
        "a FineTuningJob's spec is immutable except cancelled; create a new job instead",
    ),
    cel(
        "!oldSelf.cancelled || self.cancelled",
        "a cancelled job cannot be resumed",
        field_path=".cancelled",
    ),
)
FineTuningJobSpec.model_rebuild(force=True)


class JobProgress(CamelModel):
    """How far training has got, reported by the trainer."""

    model_config = ConfigDict(extra="ignore")

    percent: float = Field(default=0, ge=0, le=100)
    epoch: int = Field(default=0, ge=0)
    step: int = Field(default=0, ge=0)
    total_steps: int | None = Field(default=None, ge=0)
    train_loss: float | None = None
    eval_loss: float | None = None
    input_tokens: int = Field(default=0, ge=0, description="Tokens trained on so far.")


class FineTuningJobStatus(StatusBase):
    state: JobState = JobState.JOB_STATE_UNSPECIFIED
    job_progress: JobProgress | None = None
    start_time: datetime | None = Field(default=None, description="When training started.")
    completed_time: datetime | None = Field(
        default=None, description="When the job reached a final state."
    )
    output_model: str | None = Field(
        default=None, description="accounts/<a>/models/<m> produced by the job."
    )
    truncated_example_count: int | None = Field(
        default=None, ge=0, description="Examples longer than maxContextLength."
    )


class FineTuningJob(Resource[FineTuningJobSpec, FineTuningJobStatus]):
    kind: Literal["FineTuningJob"] = "FineTuningJob"
    kind_info = KindInfo(
        plural="finetuningjobs",
        singular="finetuningjob",
        short_names=("ftj", "sftj"),
        scope="Namespaced",
        description=(
            "A Hearth supervised fine-tuning job (Fireworks "
            "accounts/<a>/supervisedFineTuningJobs/<id>) producing a LoRA addon Model."
        ),
        printer_columns=(
            PrinterColumn("Dataset", ".spec.dataset"),
            PrinterColumn("Base-Model", ".spec.baseModel"),
            state_column("Fireworks JobState"),
            PrinterColumn("Progress", ".status.jobProgress.percent", "number"),
            PrinterColumn("Output", ".status.outputModel", priority=1),
            AGE,
        ),
        root_rules=(object_name_rule("FineTuningJob"),),
    )
