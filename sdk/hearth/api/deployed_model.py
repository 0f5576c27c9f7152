"""DeployedModel: "model X is loaded on deployment Y" (a base model or a LoRA addon)."""

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
from .model import ModelKind


class DeployedModelState(StrEnum):
    """Fireworks' states, plus FAILED (Hearth) when loading failed and is being retried."""

    STATE_UNSPECIFIED = "STATE_UNSPECIFIED"
    UNDEPLOYING = "UNDEPLOYING"
    DEPLOYING = "DEPLOYING"
    DEPLOYED = "DEPLOYED"
    UPDATING = "UPDATING"
    FAILED = "FAILED"


class ReplicaLoadState(StrEnum):
    LOADING = "LOADING"
    LOADED = "LOADED"
    FAILED = "FAILED"


class DeployedModelSpec(CamelModel):
    model_config = ConfigDict(
        json_schema_extra=rules(
            cel(
                "!(self.serverless && has(self.modelKind) && self.modelKind == 'HF_PEFT_ADDON')",
                "a LoRA addon (modelKind HF_PEFT_ADDON) is never deployed serverless; "
                "load it on a dedicated deployment with enableAddons",
                field_path=".serverless",
            ),
        )
    )

    model: str = Field(
        pattern=reference_pattern("models"),
        max_length=REFERENCE_MAX_LENGTH,
        description="The model to load: an ID in this account or accounts/<a>/models/<m>.",
        json_schema_extra=rules(
            cel("self == oldSelf", "model is immutable; create another DeployedModel")
        ),
    )
    deployment: str = Field(
        pattern=reference_pattern("deployments"),
        max_length=REFERENCE_MAX_LENGTH,
        description="The deployment to load it on: an ID or accounts/<a>/deployments/<d>.",
        json_schema_extra=rules(
            cel("self == oldSelf", "deployment is immutable; create another DeployedModel")
        ),
    )
    model_kind: ModelKind | None = Field(
        default=None,
        description=(
            "What the client believes the model is; when set, the operator checks it against "
            "the Model and the schema refuses a serverless addon up front."
        ),
    )
    default: bool | None = Field(
        default=None,
        description=(
            "Requests naming only the model go here. Unset: true for the model's first "
            "deployment. At most one default per model."
        ),
    )
    serverless: bool = Field(default=False, description="Loaded onto a serverless deployment.")
    public: bool = Field(default=False, description="Queryable by other accounts.")
    display_name: DisplayName | None = None
    description: Description | None = None


class ReplicaLoad(CamelModel):
    """The adapter's load state on one replica."""

    model_config = ConfigDict(extra="ignore")

    pod: str = Field(description="The replica's pod.")
    state: ReplicaLoadState
    message: str | None = Field(default=None, description="The server's answer when it failed.")


class DeployedModelStatus(StatusBase):
    state: DeployedModelState = DeployedModelState.STATE_UNSPECIFIED
    default: bool | None = Field(default=None, description="Whether this is the model's default.")
    replicas: list[ReplicaLoad] = Field(
        default_factory=list, max_length=1000, description="Load state on each ready replica."
    )
    loaded_replica_count: int = Field(
        default=0, ge=0, description="Ready replicas that have the model loaded."
    )


class DeployedModel(Resource[DeployedModelSpec, DeployedModelStatus]):
    kind: Literal["DeployedModel"] = "DeployedModel"
    kind_info = KindInfo(
        plural="deployedmodels",
        singular="deployedmodel",
        short_names=("dm", "hdm"),
        scope="Namespaced",
        description=(
            "A Hearth deployed model (Fireworks accounts/<a>/deployedModels/<id>): a model "
            "loaded on a deployment."
        ),
        printer_columns=(
            PrinterColumn("Model", ".spec.model"),
            PrinterColumn("Deployment", ".spec.deployment"),
            PrinterColumn("Default", ".status.default", "boolean"),
            state_column(),
            PrinterColumn("Loaded", ".status.loadedReplicaCount", "integer", priority=1),
            AGE,
        ),
        root_rules=(object_name_rule("DeployedModel"),),
    )
