"""Model <-> ``accounts/<a>/models/<m>``.

Hearth needs to know where the weights are: ``model.source.uri`` (a Hearth field, e.g.
``hf://org/repo`` or ``pvc://artifacts/path``), or Fireworks' ``huggingFaceUrl``
(``https://huggingface.co/org/repo`` becomes ``hf://org/repo``). A model created with
neither is to be uploaded: like an uploaded dataset it is an upload record (state
``UPLOADING``) until ``:validateUpload`` checks its files and creates the Model object
with ``source.uri: pvc://artifacts/uploads/<account>/models/<model>`` (see ``staged``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hearth.names import format_name

from .common import (
    Directory,
    Json,
    Obj,
    ResourceKind,
    base_json,
    copy_fields,
    new_object,
    spec_from_body,
)
from .errors import invalid

SPEC_FIELDS = (
    "kind",
    "source",
    "displayName",
    "description",
    "baseModelDetails",
    "peftDetails",
    "public",
    "conversationConfig",
    "contextLength",
    "supportsLora",
    "supportsTools",
    "supportsImageInput",
    "tunable",
    "defaultSamplingParams",
)
STATUS_FIELDS = ("supportsServerless", "deployedModelRefs", "fineTuningJob")
#: Output-only Fireworks fields a client may send back (ignored).
IGNORED = ("calibrated", "importedFrom", "deployedModelRefs", "supportsServerless", "fineTuningJob")
HF_PREFIX = "https://huggingface.co/"


def to_json(obj: Obj, directory: Directory) -> Json:
    spec = obj.get("spec") or {}
    out = base_json(obj, "models", directory)
    out.update(copy_fields(spec, SPEC_FIELDS))
    out.setdefault("kind", "HF_PEFT_ADDON")
    out.update(copy_fields(obj.get("status") or {}, STATUS_FIELDS))
    uri = (spec.get("source") or {}).get("uri")
    if isinstance(uri, str) and uri.startswith("hf://"):
        out["huggingFaceUrl"] = HF_PREFIX + uri.removeprefix("hf://").split("@", 1)[0]
    return out


def _source_of_hf_url(url: object) -> Json:
    if not isinstance(url, str) or not url.startswith(HF_PREFIX):
        raise invalid(f"model.huggingFaceUrl: expected {HF_PREFIX}<org>/<repo>, got {url!r}")
    repo = url.removeprefix(HF_PREFIX).strip("/")
    if repo.count("/") != 1:
        raise invalid(f"model.huggingFaceUrl: expected {HF_PREFIX}<org>/<repo>, got {url!r}")
    return {"uri": f"hf://{repo}"}


def spec_of(body: Mapping[str, Any]) -> tuple[Json, bool]:
    """(the Model spec, whether its files are to be uploaded: no source was named)."""
    fields = dict(body)
    hf_url = fields.pop("huggingFaceUrl", None)
    spec = spec_from_body(fields, allowed=SPEC_FIELDS, where="model", ignored=IGNORED)
    if "source" in spec:
        return spec, False
    if hf_url is not None:
        spec["source"] = _source_of_hf_url(hf_url)
        return spec, False
    return spec, True


def create(account: str, model_id: str, body: Mapping[str, Any], creator: str) -> Obj:
    """The Model of a body that names where its weights are (400 when it names none)."""
    spec, upload = spec_of(body)
    if upload:
        raise invalid(
            "model.source.uri: required: where the weights are (hf://org/repo, "
            "pvc://artifacts/path, builtin://...), or model.huggingFaceUrl; uploading the "
            "files needs a gateway started with --upload-dir"
        )
    return new_object("Model", model_id, account, spec, creator)


def uploaded_uri(account: str, model_id: str) -> str:
    return f"pvc://artifacts/uploads/{account}/models/{model_id}"


def create_object(account: str, model_id: str, spec: Json, uri: str, creator: str) -> Obj:
    return new_object("Model", model_id, account, {**spec, "source": {"uri": uri}}, creator)


def pending_json(account: str, model_id: str, record: Json, directory: Directory) -> Json:
    """An upload record as Fireworks shows a model waiting for its files."""
    spec = record.get("spec") or {}
    files = record.get("files") or {}
    received = sum(1 for info in files.values() if "sha256" in info)
    out: Json = {
        "name": format_name(account, "models", model_id),
        "createTime": record.get("createTime"),
        "updateTime": record.get("updateTime") or record.get("createTime"),
        "state": "UPLOADING",
        "status": {
            "code": "OK",
            "message": f"waiting for the upload ({received} of {len(files)} file(s) received) "
            "and :validateUpload",
        },
    }
    out.update(copy_fields(spec, SPEC_FIELDS))
    out.setdefault("kind", "HF_PEFT_ADDON")
    creator = directory.who(record.get("createdBy"))
    if creator:
        out["createdBy"] = creator
    return out


MODELS = ResourceKind(
    kind="Model",
    plural="models",
    collection="models",
    list_key="models",
    to_json=to_json,
    fields=frozenset(
        {"name", "createTime", "updateTime", "state", "status", "createdBy", "huggingFaceUrl"}
    )
    | frozenset(SPEC_FIELDS)
    | frozenset(STATUS_FIELDS),
    filterable=("state", "kind", "public", "displayName", "supportsServerless", "createdBy"),
    updatable=frozenset(
        {
            "displayName",
            "description",
            "public",
            "conversationConfig",
            "contextLength",
            "supportsLora",
            "supportsTools",
            "supportsImageInput",
            "tunable",
            "defaultSamplingParams",
            "baseModelDetails",
        }
    ),
)
