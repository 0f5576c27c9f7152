"""Model: checks that need other objects, READY or a condition that says what is wrong."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from hearth.api import ModelKind, ModelSpec, ModelState
from hearth.api.model import MODEL_SOURCE_SCHEMES

from ..conditions import Cond, set_conditions
from ..constants import LABEL_FINE_TUNING_JOB
from .common import Obj, Ref, resolve_ref


@dataclass(frozen=True)
class ModelCheck:
    ok: bool
    reason: str
    message: str


def base_model_ref(model: Obj) -> Ref | None:
    """The base model an addon names (resolved against the addon's account), if any."""
    spec = model.get("spec") or {}
    peft = spec.get("peftDetails") or {}
    if spec.get("kind", ModelKind.HF_PEFT_ADDON.value) != ModelKind.HF_PEFT_ADDON.value:
        return None
    if not peft.get("baseModel"):
        return None
    return resolve_ref(peft["baseModel"], "models", model["metadata"]["namespace"])


def check_model(model: Obj, base: Obj | None, *, platform_account: str) -> ModelCheck:
    """Validate a Model against the objects it names. ``base`` is the addon's base, if found."""
    try:
        spec = ModelSpec.model_validate(model.get("spec") or {})
    except ValidationError as error:
        return ModelCheck(False, "InvalidSpec", _first_error(error))
    scheme = spec.source.uri.split("://", 1)[0]
    if scheme not in MODEL_SOURCE_SCHEMES:
        supported = ", ".join(f"{s}://" for s in MODEL_SOURCE_SCHEMES)
        return ModelCheck(
            False,
            "UnsupportedSource",
            f"source.uri scheme {scheme}:// is not supported; use one of {supported}",
        )
    if spec.kind == ModelKind.HF_BASE_MODEL:
        return ModelCheck(True, "Validated", f"base model from {spec.source.uri}")
    if spec.kind == ModelKind.EMBEDDING_MODEL:
        return ModelCheck(True, "Validated", f"embedding model from {spec.source.uri}")
    assert spec.peft_details is not None  # the CRD requires it for addons
    ref = base_model_ref(model)
    assert ref is not None
    shown = ref.full_name("models")
    if base is None:
        return ModelCheck(False, "BaseModelNotFound", f"base model {shown} does not exist")
    own_account = model["metadata"]["namespace"]
    base_spec_raw = base.get("spec") or {}
    if (
        ref.namespace != own_account
        and ref.namespace != platform_account
        and not base_spec_raw.get("public", False)
    ):
        return ModelCheck(
            False,
            "BaseModelNotAccessible",
            f"base model {shown} is in another account and is not public",
        )
    base_kind = base_spec_raw.get("kind", ModelKind.HF_PEFT_ADDON.value)
    if base_kind != ModelKind.HF_BASE_MODEL.value:
        what = "itself an addon" if base_kind == ModelKind.HF_PEFT_ADDON.value else base_kind
        return ModelCheck(
            False,
            "BaseModelNotBase",
            f"{shown} is {what}; an addon's baseModel must be an HF_BASE_MODEL",
        )
    if not base_spec_raw.get("supportsLora", True):
        return ModelCheck(False, "BaseModelNoLora", f"base model {shown} has supportsLora: false")
    base_state = (base.get("status") or {}).get("state")
    if base_state != ModelState.READY.value:
        return ModelCheck(
            False, "BaseModelNotReady", f"base model {shown} is {base_state or 'not yet validated'}"
        )
    rank = spec.peft_details.r
    return ModelCheck(True, "Validated", f"LoRA addon of {shown}, rank {rank}")


def _first_error(error: ValidationError) -> str:
    first = error.errors()[0]
    location = ".".join(str(p) for p in first["loc"])
    return f"spec.{location}: {first['msg']}"


def deployed_model_refs(model: Obj, deployed_models: list[Obj]) -> list[dict[str, Any]]:
    """Fireworks' deployedModelRefs: where this model is deployed (from DeployedModels)."""
    metadata = model["metadata"]
    own = Ref(metadata["namespace"], metadata["name"])
    refs = []
    for dm in deployed_models:
        dm_meta = dm["metadata"]
        spec = dm.get("spec") or {}
        try:
            if resolve_ref(spec.get("model", ""), "models", dm_meta["namespace"]) != own:
                continue
            deployment = resolve_ref(
                spec.get("deployment", ""), "deployments", dm_meta["namespace"]
            )
        except ValueError:
            continue
        status = dm.get("status") or {}
        refs.append(
            {
                "name": Ref(dm_meta["namespace"], dm_meta["name"]).full_name("deployedModels"),
                "deployment": deployment.full_name("deployments"),
                "state": status.get("state", "STATE_UNSPECIFIED"),
                "default": bool(status.get("default", False)),
                "public": bool(spec.get("public", False)),
            }
        )
    return sorted(refs, key=lambda r: r["name"])


def model_status(
    model: Obj,
    check: ModelCheck,
    *,
    refs: list[dict[str, Any]],
    serverless: bool,
    now: datetime,
) -> dict[str, Any]:
    metadata = model["metadata"]
    generation = metadata.get("generation")
    previous = model.get("status") or {}
    state = ModelState.READY if check.ok else ModelState.FAILED
    status: dict[str, Any] = {
        "state": state.value,
        "observedGeneration": generation,
        "message": "" if check.ok else check.message,
        "supportsServerless": serverless,
        "deployedModelRefs": refs,
        "conditions": set_conditions(
            previous.get("conditions"),
            [Cond("Ready", check.ok, check.reason, check.message)],
            generation=generation,
            now=now,
        ),
    }
    job = (metadata.get("labels") or {}).get(LABEL_FINE_TUNING_JOB)
    if job:  # the back-reference of a Model a FineTuningJob produced
        status["fineTuningJob"] = f"accounts/{metadata['namespace']}/supervisedFineTuningJobs/{job}"
    return status
