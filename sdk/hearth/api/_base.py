"""Building blocks shared by every Hearth resource model.

The pydantic models in this package are the single source of truth for the CRDs: field
names, enums, defaults, bounds and the CEL rules (``x-kubernetes-validations``) are written
here once and generated into ``crds/`` by ``hearth.crd``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, ClassVar, Generic, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema
from pydantic.alias_generators import to_camel

GROUP = "hearth.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

#: The Fireworks ID rule as a regular expression (1-63 chars, see ``hearth.names``).
ID_PATTERN = r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$"
_ID_BODY = r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?"
#: Longest accepted reference (``accounts/<63>/<collection>/<63>``).
REFERENCE_MAX_LENGTH = 253


def reference_pattern(collection: str) -> str:
    """A bare ID (same account) or a full ``accounts/<a>/<collection>/<id>`` name."""
    return rf"^(accounts/{_ID_BODY}/{collection}/)?{_ID_BODY}$"


def cel(
    rule: str,
    message: str,
    *,
    field_path: str | None = None,
    reason: str | None = None,
) -> dict[str, str]:
    """One ``x-kubernetes-validations`` entry."""
    entry = {"rule": rule, "message": message}
    if field_path:
        entry["fieldPath"] = field_path
    if reason:
        entry["reason"] = reason
    return entry


def rules(*entries: dict[str, str]) -> dict[str, Any]:
    """``json_schema_extra`` carrying CEL rules for a model or field."""
    return {"x-kubernetes-validations": list(entries)}


class CamelModel(BaseModel):
    """Python attributes in snake_case, the wire (and CRD) in Fireworks' camelCase."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_enum_values=False,
        validate_default=True,
    )

    def to_wire(self) -> dict[str, Any]:
        """The JSON-ready camelCase dict, without unset optional fields."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class StrEnum(enum.StrEnum):
    """Enums serialise as their Fireworks string value."""


class AcceleratorType(StrEnum):
    """Fireworks' accelerator enum, plus ``CPU`` (a Hearth extension for CPU-only serving)."""

    ACCELERATOR_TYPE_UNSPECIFIED = "ACCELERATOR_TYPE_UNSPECIFIED"
    NVIDIA_A100_80GB = "NVIDIA_A100_80GB"
    NVIDIA_H100_80GB = "NVIDIA_H100_80GB"
    AMD_MI300X_192GB = "AMD_MI300X_192GB"
    NVIDIA_A10G_24GB = "NVIDIA_A10G_24GB"
    NVIDIA_A100_40GB = "NVIDIA_A100_40GB"
    NVIDIA_L4_24GB = "NVIDIA_L4_24GB"
    NVIDIA_H200_141GB = "NVIDIA_H200_141GB"
    NVIDIA_B200_180GB = "NVIDIA_B200_180GB"
    AMD_MI325X_256GB = "AMD_MI325X_256GB"
    AMD_MI350X_288GB = "AMD_MI350X_288GB"
    NVIDIA_B300_288GB = "NVIDIA_B300_288GB"
    CPU = "CPU"


#: Fireworks' default for shapes; what a Deployment or job gets when it names none.
DEFAULT_ACCELERATOR = AcceleratorType.NVIDIA_A100_80GB


class Precision(StrEnum):
    """Fireworks' serving precision enum, plus INT8 and INT4 (Hearth extensions: weight-only
    int8, and int4 with a scale and offset per 32 inputs; CPU)."""

    PRECISION_UNSPECIFIED = "PRECISION_UNSPECIFIED"
    FP16 = "FP16"
    FP8 = "FP8"
    FP8_MM = "FP8_MM"
    FP8_AR = "FP8_AR"
    FP8_MM_KV_ATTN = "FP8_MM_KV_ATTN"
    FP8_KV = "FP8_KV"
    FP8_MM_V2 = "FP8_MM_V2"
    FP8_V2 = "FP8_V2"
    FP8_MM_KV_ATTN_V2 = "FP8_MM_KV_ATTN_V2"
    NF4 = "NF4"
    FP4 = "FP4"
    BF16 = "BF16"
    FP4_BLOCKSCALED_MM = "FP4_BLOCKSCALED_MM"
    FP4_MX_MOE = "FP4_MX_MOE"
    INT8 = "INT8"
    INT4 = "INT4"


#: Precisions that quantise weights; Fireworks refuses LoRA addons on them.
QUANTIZED_PRECISIONS = tuple(
    p.value for p in Precision if p.value.startswith(("FP8", "FP4", "NF4"))
)


LORA_RANK_MIN = 4
LORA_RANK_MAX = 64


def _check_lora_rank(value: int) -> int:
    if not LORA_RANK_MIN <= value <= LORA_RANK_MAX:
        raise ValueError(f"LoRA rank must be between {LORA_RANK_MIN} and {LORA_RANK_MAX}")
    return value


#: A LoRA rank: checked by CEL in the CRD (for the friendlier message) and here in Python.
LoraRank = Annotated[
    int,
    AfterValidator(_check_lora_rank),
    WithJsonSchema(
        {
            "type": "integer",
            "x-kubernetes-validations": [
                cel(
                    f"self >= {LORA_RANK_MIN} && self <= {LORA_RANK_MAX}",
                    f"LoRA rank must be between {LORA_RANK_MIN} and {LORA_RANK_MAX}",
                )
            ],
        }
    ),
]

#: A Go-style duration as Kubernetes users write it ("30s", "10m", "1h30m").
Duration = Annotated[str, Field(pattern=r"^([0-9]+(ms|s|m|h))+$", max_length=32)]

DisplayName = Annotated[str, Field(max_length=63, description="Human-readable name (< 64 chars).")]
Description = Annotated[str, Field(max_length=999, description="Free text (< 1000 chars).")]


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(CamelModel):
    """A Kubernetes condition (``metav1.Condition``)."""

    model_config = ConfigDict(extra="ignore")

    type: str = Field(
        pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
        r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
        max_length=316,
        description="CamelCase condition type, e.g. Ready.",
    )
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(
        pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
        min_length=1,
        max_length=1024,
        description="CamelCase reason for the condition's last transition.",
    )
    message: str = Field(default="", max_length=32768, description="Human-readable details.")
    last_transition_time: datetime = Field(
        description="When the status last changed (not when it was last checked)."
    )
    observed_generation: int | None = Field(
        default=None, ge=0, description="metadata.generation this condition was computed from."
    )


Conditions = Annotated[
    list[Condition],
    Field(
        max_length=32,
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["type"],
        },
    ),
]


class StatusBase(CamelModel):
    """Fields every Hearth status has: the Fireworks state plus Kubernetes conditions."""

    model_config = ConfigDict(extra="ignore")

    observed_generation: int | None = Field(
        default=None, ge=0, description="metadata.generation the status was computed from."
    )
    message: str | None = Field(
        default=None,
        max_length=32768,
        description="Why the resource is in its state, in words.",
    )
    conditions: Conditions = Field(
        default_factory=list,
        description="Kubernetes conditions; Ready summarises the resource.",
    )


class AcceleratorUsage(CamelModel):
    """Accelerator time this billing period, from the usage ledger (operator metering)."""

    model_config = ConfigDict(extra="ignore")

    period_start: datetime | None = Field(
        default=None, description="Start of the period summed: the current UTC month."
    )
    accelerator_seconds: dict[str, int] = Field(
        default_factory=dict,
        description="GPU-seconds per acceleratorType (replicas x acceleratorCount x seconds, "
        "from scheduled to deleted); CPU replicas count replica-seconds under CPU.",
    )
    replica_seconds: dict[str, int] = Field(
        default_factory=dict, description="Replica-seconds per acceleratorType."
    )


class ObjectMeta(BaseModel):
    """The parts of ``metav1.ObjectMeta`` Hearth code reads; the rest is kept as is."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, alias_generator=to_camel)

    name: str | None = None
    namespace: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    generation: int | None = None
    uid: str | None = None
    resource_version: str | None = None


@dataclass(frozen=True)
class PrinterColumn:
    name: str
    json_path: str
    type: Literal["string", "integer", "number", "boolean", "date"] = "string"
    description: str = ""
    priority: int = 0

    def to_crd(self) -> dict[str, Any]:
        column: dict[str, Any] = {"name": self.name, "type": self.type, "jsonPath": self.json_path}
        if self.description:
            column["description"] = self.description
        if self.priority:
            column["priority"] = self.priority
        return column


AGE = PrinterColumn("Age", ".metadata.creationTimestamp", "date")


def state_column(description: str = "Fireworks state") -> PrinterColumn:
    return PrinterColumn("State", ".status.state", description=description)


@dataclass(frozen=True)
class ScaleSubresource:
    spec_replicas_path: str
    status_replicas_path: str
    label_selector_path: str | None = None

    def to_crd(self) -> dict[str, str]:
        scale = {
            "specReplicasPath": self.spec_replicas_path,
            "statusReplicasPath": self.status_replicas_path,
        }
        if self.label_selector_path:
            scale["labelSelectorPath"] = self.label_selector_path
        return scale


SpecT = TypeVar("SpecT", bound=CamelModel)
StatusT = TypeVar("StatusT", bound=StatusBase)


@dataclass(frozen=True)
class KindInfo:
    """What the CRD needs beyond the spec and status schemas."""

    plural: str
    singular: str
    short_names: tuple[str, ...]
    scope: Literal["Namespaced", "Cluster"]
    description: str
    printer_columns: tuple[PrinterColumn, ...]
    scale: ScaleSubresource | None = None
    #: Extra rules at the object root (where CEL may read metadata.name).
    root_rules: tuple[dict[str, str], ...] = field(default_factory=tuple)


#: Where root rules about the object's name report (a CEL ``fieldPath``).
NAME_FIELD_PATH = ".metadata.name"


def object_name_rule(what: str) -> dict[str, str]:
    """metadata.name must follow the Fireworks ID rule (stricter than Kubernetes' own).

    The rule sits at the root (only there can CEL read metadata) and reports at
    ``metadata.name``, which the CRD declares for that purpose (see ``hearth.crd``).
    """
    return cel(
        f"self.metadata.name.matches('{ID_PATTERN}')",
        f"{what} IDs are 1-63 characters of a-z, 0-9 and '-', starting with a letter and "
        "not ending with '-'",
        field_path=NAME_FIELD_PATH,
    )


class Resource(BaseModel, Generic[SpecT, StatusT]):
    """A whole Hearth object as stored in Kubernetes."""

    model_config = ConfigDict(populate_by_name=True, alias_generator=to_camel, extra="ignore")

    kind_info: ClassVar[KindInfo]

    api_version: Literal["hearth.dev/v1alpha1"] = "hearth.dev/v1alpha1"
    kind: str
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: SpecT
    status: StatusT | None = None
