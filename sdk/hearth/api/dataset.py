"""Dataset: an immutable JSONL set of training examples."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from ._base import (
    AGE,
    CamelModel,
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

#: URI schemes a Dataset can be read from.
DATASET_SOURCE_SCHEMES = ("pvc", "file", "https", "s3")


class DatasetFormat(StrEnum):
    """The subset of Fireworks' Dataset.format enum Hearth trains on."""

    CHAT = "CHAT"
    COMPLETION = "COMPLETION"


class DatasetState(StrEnum):
    """Fireworks' Dataset states, plus FAILED (Hearth) when validation rejects the content."""

    STATE_UNSPECIFIED = "STATE_UNSPECIFIED"
    UPLOADING = "UPLOADING"
    READY = "READY"
    FAILED = "FAILED"


class ConfigMapSource(CamelModel):
    name: str = Field(
        pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
        max_length=253,
        description="A ConfigMap in the account namespace.",
    )
    key: str = Field(
        pattern=r"^[-._a-zA-Z0-9]+$", max_length=253, description="The key holding the JSONL."
    )


class DatasetSource(CamelModel):
    model_config = ConfigDict(
        json_schema_extra=rules(
            cel(
                "has(self.uri) != has(self.configMap)",
                "set exactly one of source.uri and source.configMap",
            )
        )
    )

    uri: str | None = Field(
        default=None,
        pattern=rf"^({'|'.join(DATASET_SOURCE_SCHEMES)})://.+$",
        max_length=2048,
        description=(
            "pvc://claim/path on the account's artifact volume, file:///path (development), "
            "https://... or s3://bucket/key."
        ),
    )
    config_map: ConfigMapSource | None = Field(
        default=None, description="A small dataset kept in a ConfigMap."
    )


class DatasetSpec(CamelModel):
    model_config = ConfigDict(
        json_schema_extra=rules(
            cel(
                "self == oldSelf",
                "Dataset spec is immutable: a dataset's content never changes after creation; "
                "create a new Dataset instead",
            )
        )
    )

    format: DatasetFormat = Field(
        default=DatasetFormat.CHAT,
        description="CHAT (messages) or COMPLETION (prompt/completion) JSONL.",
    )
    source: DatasetSource = Field(description="Where the JSONL file is.")
    display_name: DisplayName | None = None
    example_count: int | None = Field(
        default=None, ge=0, description="Examples the uploader expects; checked when validated."
    )


class DatasetError(CamelModel):
    """One problem found while validating the file."""

    model_config = ConfigDict(extra="ignore")

    line: int = Field(ge=0, description="1-based line in the JSONL file (0: the whole file).")
    message: str = Field(max_length=1024)


class DatasetStatus(StatusBase):
    state: DatasetState = DatasetState.STATE_UNSPECIFIED
    example_count: int | None = Field(default=None, ge=0, description="Valid examples found.")
    estimated_token_count: int | None = Field(
        default=None, ge=0, description="Tokens in the dataset, by the base tokenizer."
    )
    average_turn_count: float | None = Field(
        default=None, ge=0, description="Messages per example, on average."
    )
    errors: list[DatasetError] = Field(
        default_factory=list, max_length=20, description="The first problems found, by line."
    )


class Dataset(Resource[DatasetSpec, DatasetStatus]):
    kind: Literal["Dataset"] = "Dataset"
    kind_info = KindInfo(
        plural="datasets",
        singular="dataset",
        short_names=("hds",),
        scope="Namespaced",
        description="A Hearth dataset (Fireworks accounts/<a>/datasets/<id>): immutable JSONL.",
        printer_columns=(
            PrinterColumn("Format", ".spec.format"),
            state_column(),
            PrinterColumn("Examples", ".status.exampleCount", "integer"),
            PrinterColumn("Tokens", ".status.estimatedTokenCount", "integer", priority=1),
            AGE,
        ),
        root_rules=(object_name_rule("Dataset"),),
    )
