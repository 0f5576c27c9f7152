"""FineTuningJob <-> ``accounts/<a>/supervisedFineTuningJobs/<j>``; ``:cancel`` sets
``spec.cancelled`` (a job's spec is otherwise immutable, so there is no update);
``:resume`` creates a failed or cancelled job anew under its name (see
``ControlPlane.resume_job``)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from .common import (
    Directory,
    Json,
    Obj,
    ResourceKind,
    base_json,
    copy_fields,
    created_by,
    full_reference,
    new_object,
    short_id,
    spec_from_body,
)
from .errors import invalid

SPEC_FIELDS = (
    "dataset",
    "baseModel",
    "warmStartFrom",
    "outputModel",
    "displayName",
    "epochs",
    "learningRate",
    "learningRateWarmupSteps",
    "loraRank",
    "loraAlpha",
    "maxContextLength",
    "batchSize",
    "batchSizeSamples",
    "gradientAccumulationSteps",
    "optimizerWeightDecay",
    "evaluationDataset",
    "evalAutoCarveout",
    "earlyStop",
    "seed",
    "acceleratorType",
    "acceleratorCount",
)
#: States ``:resume`` starts again from.
RESUMABLE_STATES = frozenset({"JOB_STATE_FAILED", "JOB_STATE_CANCELLED"})
IGNORED = ("completedTime", "jobProgress", "estimatedCost", "trainerLogsSignedUrl")


def to_json(obj: Obj, directory: Directory) -> Json:
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    account = obj["metadata"]["namespace"]
    out = base_json(obj, "supervisedFineTuningJobs", directory)
    out["state"] = status.get("state") or "JOB_STATE_UNSPECIFIED"
    out.update(copy_fields(spec, SPEC_FIELDS))
    out["dataset"] = full_reference(spec.get("dataset"), "datasets", account)
    for ref in ("baseModel", "warmStartFrom"):
        if spec.get(ref):
            out[ref] = full_reference(spec[ref], "models", account)
    if spec.get("evaluationDataset"):
        out["evaluationDataset"] = full_reference(spec["evaluationDataset"], "datasets", account)
    output = status.get("outputModel") or spec.get("outputModel") or obj["metadata"]["name"]
    out["outputModel"] = full_reference(output, "models", account)
    out.update(copy_fields(status, ("jobProgress", "completedTime")))
    return out


def new_id() -> str:
    """Fireworks uses a random UUID; Hearth's IDs must start with a letter."""
    return "sftj-" + uuid.uuid4().hex[:16]


def create(account: str, job_id: str, body: Mapping[str, Any], creator: str) -> Obj:
    spec = spec_from_body(
        body, allowed=SPEC_FIELDS, where="supervisedFineTuningJob", ignored=IGNORED
    )
    if not spec.get("dataset"):
        raise invalid("supervisedFineTuningJob.dataset: required")
    if spec.get("outputModel"):
        spec["outputModel"] = short_id(str(spec["outputModel"]), "models")
    return new_object("FineTuningJob", job_id, account, spec, creator)


def resumed(obj: Obj, resumer: str) -> Obj:
    """A new FineTuningJob of the same name and spec (not cancelled) as ``obj``, created by
    its creator (else by the one resuming it). Only that annotation is carried over: the
    operator's bookkeeping annotations of the old object would hide the new one's creation."""
    meta = obj["metadata"]
    spec = {k: v for k, v in (obj.get("spec") or {}).items() if k != "cancelled"}
    return new_object(
        "FineTuningJob", meta["name"], meta["namespace"], spec, created_by(obj) or resumer
    )


FINE_TUNING_JOBS = ResourceKind(
    kind="FineTuningJob",
    plural="finetuningjobs",
    collection="supervisedFineTuningJobs",
    list_key="supervisedFineTuningJobs",
    to_json=to_json,
    fields=frozenset({"name", "createTime", "updateTime", "state", "status", "createdBy"})
    | frozenset(SPEC_FIELDS)
    | frozenset({"jobProgress", "completedTime"}),
    filterable=("state", "dataset", "baseModel", "outputModel", "displayName", "createdBy"),
)
