"""Dataset <-> ``accounts/<a>/datasets/<d>``.

A Dataset object needs its file (``spec.source`` is required and immutable), while
Fireworks creates a dataset first and uploads into it. So a ``userUploaded`` dataset is
an upload record in the gateway's upload directory (state ``UPLOADING``) until
``:validateUpload``; that call creates the Dataset object pointing at the uploaded file,
and from then on the object is the dataset (the operator validates it, READY or FAILED).
A dataset created with ``externalUrl`` (``pvc://``, ``https://``, ``s3://``) is a Dataset
object at once.
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
    new_object,
    spec_from_body,
)
from .errors import invalid

#: The prefix of uploaded files' URIs (on the account's artifact volume).
UPLOAD_URI_PREFIX = "pvc://artifacts/uploads/"
BODY_FIELDS = ("displayName", "format", "exampleCount", "externalUrl", "userUploaded")


def _int_or_none(value: Any) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise invalid(f"dataset.exampleCount: must be an integer, got {value!r}")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise invalid(f"dataset.exampleCount: must be an integer, got {value!r}") from None


def to_json(obj: Obj, directory: Directory) -> Json:
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    out = base_json(obj, "datasets", directory)
    if spec.get("displayName"):
        out["displayName"] = spec["displayName"]
    out["format"] = spec.get("format") or "CHAT"
    uri = (spec.get("source") or {}).get("uri")
    if isinstance(uri, str) and uri.startswith(UPLOAD_URI_PREFIX):
        out["userUploaded"] = {}
    elif uri:
        out["externalUrl"] = uri
    count = status.get("exampleCount", spec.get("exampleCount"))
    if count is not None:
        out["exampleCount"] = str(count)  # int64 travels as a string
    if status.get("estimatedTokenCount") is not None:
        out["estimatedTokenCount"] = str(status["estimatedTokenCount"])
    if status.get("averageTurnCount") is not None:
        out["averageTurnCount"] = status["averageTurnCount"]
    return out


def spec_of(body: Mapping[str, Any]) -> tuple[Json, bool]:
    """(the Dataset spec without a source, whether the file is to be uploaded)."""
    fields = spec_from_body(body, allowed=BODY_FIELDS, where="dataset")
    spec: Json = {}
    if fields.get("displayName"):
        spec["displayName"] = fields["displayName"]
    if fields.get("format"):
        if fields["format"] not in ("CHAT", "COMPLETION"):
            raise invalid(
                f"dataset.format: Hearth trains on CHAT and COMPLETION, got {fields['format']!r}"
            )
        spec["format"] = fields["format"]
    count = _int_or_none(fields.get("exampleCount"))
    if count is not None:
        spec["exampleCount"] = count
    external = fields.get("externalUrl")
    if external:
        spec["source"] = {"uri": external}
        return spec, False
    return spec, True


def uploaded_uri(account: str, dataset_id: str, filename: str) -> str:
    return f"{UPLOAD_URI_PREFIX}{account}/datasets/{dataset_id}/{filename}"


def pending_json(account: str, dataset_id: str, record: Json, directory: Directory) -> Json:
    """An upload record as Fireworks shows a dataset waiting for its file."""
    spec = record.get("spec") or {}
    files = record.get("files") or {}
    out: Json = {
        "name": format_name(account, "datasets", dataset_id),
        "createTime": record.get("createTime"),
        "updateTime": record.get("updateTime") or record.get("createTime"),
        "state": "UPLOADING",
        "status": {
            "code": "OK",
            "message": f"waiting for the upload ({len(files)} file(s) received) and "
            ":validateUpload",
        },
        "format": spec.get("format") or "CHAT",
        "userUploaded": {},
    }
    if spec.get("displayName"):
        out["displayName"] = spec["displayName"]
    if spec.get("exampleCount") is not None:
        out["exampleCount"] = str(spec["exampleCount"])
    creator = directory.who(record.get("createdBy"))
    if creator:
        out["createdBy"] = creator
    return out


def create_object(account: str, dataset_id: str, spec: Json, uri: str, creator: str) -> Obj:
    return new_object("Dataset", dataset_id, account, {**spec, "source": {"uri": uri}}, creator)


DATASETS = ResourceKind(
    kind="Dataset",
    plural="datasets",
    collection="datasets",
    list_key="datasets",
    to_json=to_json,
    fields=frozenset({"name", "createTime", "updateTime", "state", "status", "createdBy"})
    | frozenset(BODY_FIELDS)
    | frozenset({"estimatedTokenCount", "averageTurnCount"}),
    filterable=("state", "format", "displayName", "createdBy"),
)
