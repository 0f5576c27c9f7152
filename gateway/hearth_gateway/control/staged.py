"""Datasets and models whose files come through the gateway, and downloads of files.

A Dataset or Model object needs its ``source`` (required and immutable), while Fireworks
creates the object first and uploads into it. So an object created without a source is,
until ``:validateUpload``, an upload record in the upload directory (state ``UPLOADING``,
listed and readable through the API, not yet a Kubernetes object); ``:validateUpload``
checks the files and creates the object pointing at them, and from then on the object is
the dataset or model. ``datasets:upload`` (one multipart file) does both in one call.
``:getDownloadEndpoint`` signs GET URLs for the files of an object whose source is on the
account's artifact volume.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from hearth.validation import validate
from hearth_operator.planning.common import is_terminating, resolve_ref

from ..auth import Principal
from . import datasets, models
from .authz import Action, Grant, authorize_resource
from .common import Directory, Json, Obj, ResourceKind, flag, new_object
from .downloads import Download, Downloads, artifact_path, check_path
from .errors import ApiError, invalid
from .kube import ControlKube
from .listing import apply_read_mask, parse_mask
from .model_files import check_adapter, check_base_model, read_json_file
from .multipart import form_file
from .uploads import COMBINED, Signed, UploadStore, check_filename

if TYPE_CHECKING:
    from .plane import ControlPlane, Query


@dataclass(frozen=True)
class Uploadable:
    """A collection whose objects may wait for uploaded files."""

    collection: str
    kind: str
    resource: ResourceKind
    pending_json: Callable[[str, str, Json, Directory], Json]
    #: File names an upload may not use.
    reserved: tuple[str, ...]


DATASET = Uploadable("datasets", "Dataset", datasets.DATASETS, datasets.pending_json, (COMBINED,))
MODEL = Uploadable("models", "Model", models.MODELS, models.pending_json, ())


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _checked(obj: Obj) -> None:
    result = validate(obj)
    if not result.ok:
        problems = "; ".join(str(error) for error in result.errors)
        raise invalid(f"{obj['kind']} {obj['metadata']['name']!r} is invalid: {problems}")


class Staged:
    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane

    @property
    def kube(self) -> ControlKube:
        return self.plane.kube

    def store(self) -> UploadStore:
        if self.plane.uploads is None:
            raise ApiError(
                412,
                "uploads are not enabled on this gateway (start it with --upload-dir); create "
                "the object with a source instead (dataset.externalUrl, model.source.uri)",
            )
        return self.plane.uploads

    async def _record(self, up: Uploadable, account: str, item: str) -> Json | None:
        if self.plane.uploads is None:
            return None
        return await asyncio.to_thread(self.plane.uploads.read_record, account, up.collection, item)

    # ------------------------------------------------------------------ creates

    async def create_dataset(self, principal: Principal, account: str, body: Json) -> Json:
        dataset_id = body.get("datasetId")
        if not isinstance(dataset_id, str) or not dataset_id:
            raise invalid("datasetId: required")
        for unsupported in ("sourceDatasetId", "filter"):
            if body.get(unsupported):
                raise invalid(f"{unsupported}: derived datasets are not supported by Hearth")
        spec_body = body.get("dataset") or {}
        if not isinstance(spec_body, dict):
            raise invalid("dataset: must be an object")
        spec, upload = datasets.spec_of(spec_body)
        if not upload:
            obj = new_object("Dataset", dataset_id, account, spec, principal.user)
            return await self.plane.create_resource(principal, account, obj)
        # Validate what can be validated now, with a placeholder file.
        uri = datasets.uploaded_uri(account, dataset_id, "x.jsonl")
        probe = datasets.create_object(account, dataset_id, spec, uri, "")
        return await self._stage(DATASET, principal, account, dataset_id, spec, probe)

    async def create_model(self, principal: Principal, account: str, body: Json) -> Json:
        model_id = body.get("modelId")
        if not isinstance(model_id, str) or not model_id:
            raise invalid("modelId: required")
        if body.get("cluster"):
            raise invalid("cluster: BYOC clusters are not supported by Hearth")
        spec_body = body.get("model") or {}
        if not isinstance(spec_body, dict):
            raise invalid("model: must be an object")
        if self.plane.uploads is None:
            obj = models.create(account, model_id, spec_body, principal.user)
            return await self.plane.create_resource(principal, account, obj)
        spec, upload = models.spec_of(spec_body)
        if not upload:
            obj = new_object("Model", model_id, account, spec, principal.user)
            return await self.plane.create_resource(principal, account, obj)
        probe = models.create_object(
            account, model_id, spec, models.uploaded_uri(account, model_id), ""
        )
        return await self._stage(MODEL, principal, account, model_id, spec, probe)

    async def _stage(
        self,
        up: Uploadable,
        principal: Principal,
        account: str,
        item: str,
        spec: Json,
        probe: Obj,
    ) -> Json:
        """An upload record for an object that waits for its files."""
        authorize_resource(principal, account, Action.CREATE)
        _checked(probe)
        store = self.store()
        try:
            await self.kube.get(up.kind, account, item)
        except ApiError as error:
            if error.status != 404:
                raise
        else:
            raise ApiError(409, f"{up.kind} {item!r} already exists")
        if await self._record(up, account, item) is not None:
            raise ApiError(409, f"{up.kind} {item!r} already exists (waiting for its upload)")
        record = {"spec": spec, "createdBy": principal.user, "createTime": _now(), "files": {}}
        await asyncio.to_thread(store.write_record, account, up.collection, item, record)
        return up.pending_json(account, item, record, self.plane.directory(account))

    # ------------------------------------------------------------------ reads, deletes

    async def get_item(
        self, up: Uploadable, principal: Principal, account: str, item: str, query: Query
    ) -> Json:
        try:
            return await self.plane.get(up.resource, principal, account, item, query)
        except ApiError as error:
            if error.status != 404:
                raise
            record = await self._record(up, account, item)
            if record is None:
                raise
        mask = parse_mask(query.get("readMask"), up.resource.fields, "readMask")
        pending = up.pending_json(account, item, record, self.plane.directory(account))
        return apply_read_mask(pending, mask)

    async def list_items(
        self, up: Uploadable, principal: Principal, account: str, query: Query
    ) -> Json:
        authorize_resource(principal, account, Action.READ)
        directory = self.plane.directory(account)
        objs = [o for o in await self.kube.list(up.kind, account) if not is_terminating(o)]
        items = [up.resource.to_json(o, directory) for o in objs]
        names = {o["metadata"]["name"] for o in objs}
        if self.plane.uploads is not None:
            store = self.plane.uploads
            pending = await asyncio.to_thread(lambda: list(store.pending(account, up.collection)))
            items += [
                up.pending_json(account, item, record, directory)
                for item, record in pending
                if item not in names
            ]
        return self.plane.page(up.resource, items, query)

    async def delete_item(
        self, up: Uploadable, principal: Principal, account: str, item: str
    ) -> Json:
        try:
            return await self.plane.delete(up.resource, principal, account, item)
        except ApiError as error:
            if error.status != 404:
                raise
            record = await self._record(up, account, item)
            if record is None or self.plane.uploads is None:
                raise
        authorize_resource(principal, account, Action.DELETE, record.get("createdBy"))
        await asyncio.to_thread(self.plane.uploads.remove, account, up.collection, item)
        return {}

    async def update_model(
        self, principal: Principal, account: str, model_id: str, body: Json, query: Query
    ) -> Json:
        try:
            return await self.plane.update(models.MODELS, principal, account, model_id, body, query)
        except ApiError as error:
            if error.status != 404 or await self._record(MODEL, account, model_id) is None:
                raise
        raise ApiError(
            412, f"Model {model_id!r} is waiting for its upload; update it after :validateUpload"
        )

    # ------------------------------------------------------------------ uploads

    async def _pending_for_write(
        self, up: Uploadable, principal: Principal, account: str, item: str
    ) -> tuple[UploadStore, Json, Grant]:
        store = self.store()
        record = await self._record(up, account, item)
        if record is None:
            try:
                await self.kube.get(up.kind, account, item)
            except ApiError:
                raise ApiError(404, f"{up.kind} {item!r} not found") from None
            raise ApiError(
                412,
                f"{up.kind} {item!r} already has its files; it is immutable, create a new one",
            )
        grant = authorize_resource(principal, account, Action.UPDATE, record.get("createdBy"))
        return store, record, grant

    async def upload_endpoint(
        self,
        up: Uploadable,
        principal: Principal,
        account: str,
        item: str,
        body: Json,
        base_url: str,
    ) -> Json:
        sizes = body.get("filenameToSize")
        if not isinstance(sizes, dict) or not sizes:
            raise invalid("filenameToSize: required, a map of file name to size in bytes")
        if body.get("enableResumableUpload"):
            raise invalid("enableResumableUpload: resumable uploads are not supported by Hearth")
        store, record, _ = await self._pending_for_write(up, principal, account, item)
        files: dict[str, Json] = {}
        urls: dict[str, str] = {}
        uris: dict[str, str] = {}
        for filename, raw_size in sizes.items():
            check_filename(str(filename), up.reserved)
            try:
                size = int(raw_size)
            except (TypeError, ValueError):
                raise invalid(f"filenameToSize.{filename}: not a size in bytes") from None
            signed = store.sign(account, up.collection, item, filename, size)
            files[filename] = {"size": size}
            urls[filename] = base_url.rstrip("/") + store.signed_path(signed)
            uris[filename] = f"pvc://artifacts/uploads/{account}/{up.collection}/{item}/{filename}"
        record = {**record, "files": files, "updateTime": _now()}
        await asyncio.to_thread(store.write_record, account, up.collection, item, record)
        return {"filenameToSignedUrls": urls, "filenameToUnsignedUris": uris}

    async def receive_upload(
        self, signed: Signed, signature: str, chunks: Callable[[], AsyncIterator[bytes]]
    ) -> Json:
        store = self.store()
        store.verify(signed, signature)
        where = (signed.account, signed.collection, signed.item)
        record = await asyncio.to_thread(store.read_record, *where)
        registered = ((record or {}).get("files") or {}).get(signed.filename)
        if record is None or registered is None or registered.get("size") != signed.size:
            raise ApiError(412, f"{signed.filename} is not registered for upload (any more)")
        received = await store.receive(signed, chunks())
        await self._register(store, where, {signed.filename: received}, replace=False)
        return {"filename": signed.filename, **received}

    async def _register(
        self, store: UploadStore, where: tuple[str, str, str], files: Json, *, replace: bool
    ) -> None:
        latest = await asyncio.to_thread(store.read_record, *where)
        if latest is None:
            raise ApiError(404, f"{where[2]!r} was deleted during the upload")
        latest["files"] = files if replace else {**(latest.get("files") or {}), **files}
        latest["updateTime"] = _now()
        await asyncio.to_thread(store.write_record, *where, latest)

    async def _check_received(
        self, up: Uploadable, store: UploadStore, account: str, item: str, record: Json
    ) -> list[str]:
        """The registered files, each arrived with its checksum (else 412)."""
        files: dict[str, Json] = record.get("files") or {}
        if not files:
            raise ApiError(412, f"{up.kind} {item!r}: no file was uploaded (getUploadEndpoint)")
        missing = sorted(name for name, info in files.items() if "sha256" not in info)
        if missing:
            raise ApiError(412, f"{up.kind} {item!r}: not uploaded yet: {', '.join(missing)}")
        for name, info in files.items():
            actual = await asyncio.to_thread(store.sha256, account, up.collection, item, name)
            if actual != info["sha256"]:
                raise ApiError(
                    412, f"{up.kind} {item!r}: {name} changed after its upload (checksum)"
                )
        return sorted(files)

    async def _finish(
        self, up: Uploadable, principal: Principal, account: str, item: str, obj: Obj, grant: Grant
    ) -> None:
        await self.plane.create_validated(obj, self.plane.act_as(principal, grant))
        await asyncio.to_thread(self.store().drop_record, account, up.collection, item)

    async def _already_validated(self, up: Uploadable, account: str, item: str) -> bool:
        """Whether the object exists made from an upload (a repeated :validateUpload)."""
        if await self._record(up, account, item) is not None:
            return False
        try:
            obj = await self.kube.get(up.kind, account, item)
        except ApiError:
            return False
        uri = str(((obj.get("spec") or {}).get("source") or {}).get("uri") or "")
        return uri.startswith(f"pvc://artifacts/uploads/{account}/{up.collection}/{item}")

    async def validate_dataset(self, principal: Principal, account: str, dataset_id: str) -> Json:
        if await self._already_validated(DATASET, account, dataset_id):
            return {}
        store, record, grant = await self._pending_for_write(
            DATASET, principal, account, dataset_id
        )
        files = await self._check_received(DATASET, store, account, dataset_id, record)
        filename = await asyncio.to_thread(store.combined, account, dataset_id, files)
        obj = datasets.create_object(
            account,
            dataset_id,
            record.get("spec") or {},
            datasets.uploaded_uri(account, dataset_id, filename),
            str(record.get("createdBy") or principal.user),
        )
        await self._finish(DATASET, principal, account, dataset_id, obj, grant)
        return {}

    async def upload_dataset_file(
        self,
        principal: Principal,
        account: str,
        dataset_id: str,
        content_type: str | None,
        body: AsyncIterator[bytes],
    ) -> Json:
        """``datasets:upload``: one multipart file, then validated as ``:validateUpload``."""
        store, _, _ = await self._pending_for_write(DATASET, principal, account, dataset_id)
        filename, contents = await form_file(content_type, body)
        check_filename(filename, DATASET.reserved, field="file")
        directory = store.item_dir(account, "datasets", dataset_id)
        received = await store.receive_file(directory, filename, contents, None)
        where = (account, "datasets", dataset_id)
        await self._register(store, where, {filename: received}, replace=True)
        await self.validate_dataset(principal, account, dataset_id)
        return {
            "id": dataset_id,
            "object": "file",
            "bytes": received["size"],
            "created_at": int(datetime.now(UTC).timestamp()),
            "filename": filename,
            "purpose": "fine-tune",
        }

    async def validate_model(
        self, principal: Principal, account: str, model_id: str, query: Query
    ) -> Json:
        if await self._already_validated(MODEL, account, model_id):
            return {"warnings": []}
        store, record, grant = await self._pending_for_write(MODEL, principal, account, model_id)
        files = await self._check_received(MODEL, store, account, model_id, record)
        spec: Json = record.get("spec") or {}
        directory = store.item_dir(account, "models", model_id)
        if spec.get("kind", "HF_PEFT_ADDON") == "HF_PEFT_ADDON":
            peft = spec.get("peftDetails") or {}
            base_config = await self._base_config(account, str(peft.get("baseModel") or ""))
            warnings = await asyncio.to_thread(
                check_adapter, directory, files, int(peft.get("r") or 0), base_config
            )
        else:
            warnings = await asyncio.to_thread(
                lambda: check_base_model(
                    directory,
                    files,
                    config_only=flag(query, "configOnly"),
                    skip_config=flag(query, "skipHfConfigValidation"),
                )
            )
        obj = models.create_object(
            account,
            model_id,
            spec,
            models.uploaded_uri(account, model_id),
            str(record.get("createdBy") or principal.user),
        )
        await self._finish(MODEL, principal, account, model_id, obj, grant)
        return {"warnings": warnings}

    async def _base_config(self, account: str, base_model: str) -> Json | None:
        """The base model's config.json when its files are on an artifact volume here."""
        try:
            ref = resolve_ref(base_model, "models", account)
        except ValueError:
            raise invalid(f"model.peftDetails.baseModel: {base_model!r} is not a model") from None
        try:
            base = await self.kube.get("Model", ref.namespace, ref.name)
        except ApiError as error:
            if error.status == 404:
                raise ApiError(
                    412, f"model.peftDetails.baseModel: {ref.full_name('models')} does not exist"
                ) from None
            raise
        path = artifact_path(((base.get("spec") or {}).get("source") or {}).get("uri"))
        if path is None:
            return None
        directory = self.store().artifacts(ref.namespace) / check_path(path)
        try:
            return await asyncio.to_thread(read_json_file, directory, "config.json")
        except ApiError:
            return None

    # ------------------------------------------------------------------ downloads

    def downloads(self) -> Downloads:
        return Downloads(self.store())

    async def download_endpoint(
        self, up: Uploadable, principal: Principal, account: str, item: str, base_url: str
    ) -> Json:
        authorize_resource(principal, account, Action.READ)
        try:
            obj = await self.kube.get(up.kind, account, item)
        except ApiError as error:
            if error.status == 404 and await self._record(up, account, item) is not None:
                raise ApiError(412, f"{up.kind} {item!r} is still waiting for its upload") from None
            raise
        uri = ((obj.get("spec") or {}).get("source") or {}).get("uri")
        path = artifact_path(uri)
        if path is None:
            where = f"at {uri}" if uri else "not in a file"
            raise ApiError(
                412,
                f"{up.kind} {item!r} is {where}; Hearth serves downloads of files on the "
                "account's artifact volume (pvc://artifacts/...)",
            )
        downloads = self.downloads()
        files = await asyncio.to_thread(downloads.files, account, path)
        base = base_url.rstrip("/")
        return {
            "filenameToSignedUrls": {
                name: base + downloads.signed_path(downloads.sign(account, file))
                for name, file in files.items()
            }
        }

    async def download(self, download: Download, signature: str) -> Path:
        downloads = self.downloads()
        downloads.verify(download, signature)
        return await asyncio.to_thread(downloads.locate, download.account, download.path)
