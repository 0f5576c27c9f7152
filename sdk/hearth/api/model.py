"""Model: weights and metadata, either a base model or a LoRA (PEFT) addon."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from ._base import (
    AGE,
    REFERENCE_MAX_LENGTH,
    CamelModel,
    Description,
    DisplayName,
    KindInfo,
    LoraRank,
    Precision,
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

#: URI schemes hearth-server can load weights from.
MODEL_SOURCE_SCHEMES = ("builtin", "hf", "pvc", "file")


class ModelKind(StrEnum):
    """The subset of Fireworks' Model.kind enum Hearth serves."""

    HF_BASE_MODEL = "HF_BASE_MODEL"
    HF_PEFT_ADDON = "HF_PEFT_ADDON"
    # A base model deployed for POST /v1/embeddings; served exactly like HF_BASE_MODEL.
    EMBEDDING_MODEL = "EMBEDDING_MODEL"


class ModelState(StrEnum):
    """Fireworks' Model states, plus FAILED (Hearth) when validation finds a problem."""

    STATE_UNSPECIFIED = "STATE_UNSPECIFIED"
    UPLOADING = "UPLOADING"
    READY = "READY"
    FAILED = "FAILED"


class ModelSource(CamelModel):
    uri: str = Field(
        pattern=rf"^({'|'.join(MODEL_SOURCE_SCHEMES)})://.+$",
        max_length=2048,
        description=(
            "Where the weights are: builtin://smollm2-135m-instruct, hf://org/repo[@revision], "
            "pvc://claim/path (on a PersistentVolumeClaim of the account) or file:///path "
            "(development only)."
        ),
    )


class BaseModelDetails(CamelModel):
    """Facts about a base model (HF_BASE_MODEL only)."""

    world_size: int = Field(default=1, ge=1, description="GPUs to serve with by default.")
    parameter_count: str | None = Field(
        default=None,
        pattern=r"^[0-9]+$",
        max_length=20,
        description="Parameter count (an int64 as a string, as Fireworks sends it).",
    )
    moe: bool = Field(default=False, description="Mixture-of-experts model.")
    default_precision: Precision | None = None


class PeftDetails(CamelModel):
    """The LoRA adapter's base model, rank and target modules (HF_PEFT_ADDON only)."""

    base_model: str = Field(
        pattern=reference_pattern("models"),
        max_length=REFERENCE_MAX_LENGTH,
        description="The base model the adapter was trained on (ID or accounts/<a>/models/<m>).",
    )
    r: LoraRank = Field(description="LoRA rank, 4-64.")
    target_modules: list[str] = Field(
        default_factory=list,
        max_length=32,
        description="Modules the adapter patches, e.g. q_proj, v_proj (read from the adapter "
        "when empty).",
        json_schema_extra={"items": {"type": "string", "maxLength": 64}},
    )


class ConversationConfig(CamelModel):
    """How chat messages become a prompt; enables chat completions."""

    style: str = Field(max_length=64, description="Chat template name, or 'jinja'.")
    system: str | None = Field(default=None, max_length=32768, description="Default system prompt.")
    template: str | None = Field(
        default=None, max_length=65536, description="Jinja template when style is 'jinja'."
    )


class ModelSpec(CamelModel):
    model_config = ConfigDict(
        json_schema_extra=rules(
            cel(
                "self.kind != 'HF_PEFT_ADDON' || has(self.peftDetails)",
                "an HF_PEFT_ADDON model needs peftDetails with baseModel and r",
                field_path=".peftDetails",
                reason="FieldValueRequired",
            ),
            cel(
                "self.kind == 'HF_PEFT_ADDON' || !has(self.peftDetails)",
                "peftDetails is only for HF_PEFT_ADDON models",
                field_path=".peftDetails",
                reason="FieldValueForbidden",
            ),
            cel(
                "self.kind != 'HF_PEFT_ADDON' || !has(self.baseModelDetails)",
                "baseModelDetails is only for HF_BASE_MODEL and EMBEDDING_MODEL models",
                field_path=".baseModelDetails",
                reason="FieldValueForbidden",
            ),
        )
    )

    kind: ModelKind = Field(
        default=ModelKind.HF_PEFT_ADDON,
        description="HF_BASE_MODEL, HF_PEFT_ADDON or EMBEDDING_MODEL (a base model used "
        "for embeddings; served like HF_BASE_MODEL). Fireworks' default is HF_PEFT_ADDON.",
    )
    source: ModelSource = Field(description="Where the weights (or adapter) are loaded from.")
    display_name: DisplayName | None = None
    description: Description | None = None
    base_model_details: BaseModelDetails | None = None
    peft_details: PeftDetails | None = None
    public: bool = Field(default=False, description="Other accounts may deploy and query it.")
    conversation_config: ConversationConfig | None = None
    context_length: int | None = Field(default=None, ge=1, description="Max context supported.")
    supports_lora: bool = Field(default=True, description="Base model accepts LoRA addons.")
    supports_tools: bool = Field(default=False, description="Supports function calling.")
    supports_image_input: bool = Field(default=False, description="Accepts images.")
    tunable: bool = Field(default=True, description="Can be fine-tuned.")
    default_sampling_params: dict[str, float] | None = Field(
        default=None,
        description="Default sampling parameters, e.g. {temperature: 0.7}.",
        json_schema_extra={"maxProperties": 32, "additionalProperties": {"type": "number"}},
    )


class DeployedModelRef(CamelModel):
    """One DeployedModel of this model."""

    model_config = ConfigDict(extra="ignore")

    name: str = Field(description="accounts/<a>/deployedModels/<id>")
    deployment: str = Field(description="accounts/<a>/deployments/<id>")
    state: str | None = None
    default: bool = False
    public: bool = False


class ModelStatus(StatusBase):
    state: ModelState = ModelState.STATE_UNSPECIFIED
    supports_serverless: bool = Field(
        default=False, description="Served by a serverless deployment of the platform account."
    )
    deployed_model_refs: list[DeployedModelRef] = Field(
        default_factory=list,
        max_length=1000,
        description="Where this model is deployed.",
    )
    fine_tuning_job: str | None = Field(
        default=None, description="The job that produced this model, if any."
    )


class Model(Resource[ModelSpec, ModelStatus]):
    kind: Literal["Model"] = "Model"
    kind_info = KindInfo(
        plural="models",
        singular="model",
        short_names=("hmodel",),
        scope="Namespaced",
        description=(
            "A Hearth model (Fireworks accounts/<a>/models/<id>): a base model or a LoRA "
            "addon bound to one."
        ),
        printer_columns=(
            PrinterColumn("Kind", ".spec.kind"),
            PrinterColumn("Base-Model", ".spec.peftDetails.baseModel"),
            state_column(),
            PrinterColumn("Source", ".spec.source.uri", priority=1),
            PrinterColumn("Rank", ".spec.peftDetails.r", "integer", priority=1),
            AGE,
        ),
        root_rules=(object_name_rule("Model"),),
    )
