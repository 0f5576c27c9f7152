"""DeployedModel <-> ``accounts/<a>/deployedModels/<x>`` (the SDK's ``lora`` methods)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .common import (
    Directory,
    Json,
    Obj,
    ResourceKind,
    base_json,
    copy_fields,
    full_reference,
    new_object,
    random_id,
    short_id,
    spec_from_body,
)
from .errors import invalid

SPEC_FIELDS = ("model", "deployment", "default", "serverless", "public", "displayName")
SPEC_FIELDS_ALL = (*SPEC_FIELDS, "description", "modelKind")


def to_json(obj: Obj, directory: Directory) -> Json:
    spec = obj.get("spec") or {}
    account = obj["metadata"]["namespace"]
    out = base_json(obj, "deployedModels", directory)
    out.update(copy_fields(spec, SPEC_FIELDS_ALL))
    out["model"] = full_reference(spec.get("model"), "models", account)
    out["deployment"] = full_reference(spec.get("deployment"), "deployments", account)
    out.setdefault("serverless", False)
    out.setdefault("public", False)
    return out


def new_id(model: str) -> str:
    """Fireworks' generated form, ``<model id>-<8 random characters>``."""
    base = short_id(model, "models").split("/")[-1][:54].rstrip("-")
    return f"{base}-{random_id(8, prefix='')}" if base else random_id(12)


def create(account: str, body: Mapping[str, Any], creator: str) -> Obj:
    spec = spec_from_body(body, allowed=SPEC_FIELDS_ALL, where="deployedModel")
    for required in ("model", "deployment"):
        if not spec.get(required):
            raise invalid(f"deployedModel.{required}: required")
    return new_object("DeployedModel", new_id(str(spec["model"])), account, spec, creator)


DEPLOYED_MODELS = ResourceKind(
    kind="DeployedModel",
    plural="deployedmodels",
    collection="deployedModels",
    list_key="deployedModels",
    to_json=to_json,
    fields=frozenset({"name", "createTime", "updateTime", "state", "status", "createdBy"})
    | frozenset(SPEC_FIELDS_ALL),
    filterable=("state", "model", "deployment", "default", "public", "serverless", "createdBy"),
    updatable=frozenset({"default", "public", "displayName", "description"}),
)
