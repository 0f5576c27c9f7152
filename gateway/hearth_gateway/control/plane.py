"""The control plane's operations: authorise, translate, call Kubernetes, translate back.

Reads go to the API server (so a client reads its own writes at once); who is calling
comes from the gateway's caches (the same key check as inference). Writes are validated
with ``hearth.validation`` first, so a bad field is a 400 that names it, and then go to
the API server as the caller (see ``authz`` and ``kube``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from hearth import api_keys as keys
from hearth.validation import validate
from hearth_operator.planning.common import is_terminating

from ..auth import AuthError, Principal, authenticate
from ..gateway import Gateway
from . import api_keys, datasets, deployed_models, deployments, fine_tuning_jobs, models, users
from .accounts import ACCOUNTS
from .authz import Action, Grant, authorize_api_keys, authorize_resource, authorize_users
from .common import (
    Directory,
    Json,
    Obj,
    ResourceKind,
    created_by,
    new_object,
    random_id,
    updated_spec,
)
from .errors import ApiError, invalid
from .kube import ControlKube, impersonation_headers
from .listing import (
    apply_read_mask,
    matches,
    page_size,
    paginate,
    parse_filter,
    parse_mask,
    parse_order_by,
    sort_items,
)
from .uploads import Signed, UploadStore, check_filename

log = logging.getLogger(__name__)

Query = Mapping[str, str]
TERMINAL_JOB_STATES = frozenset(
    {"JOB_STATE_COMPLETED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EARLY_STOPPED"}
)
#: Read-modify-write attempts of an update that meets concurrent writes.
CONFLICT_RETRIES = 5


def _flag(query: Query, name: str) -> bool:
    value = (query.get(name) or "").lower()
    if value in ("", "false", "0"):
        return False
    if value in ("true", "1"):
        return True
    raise invalid(f"{name}: expected true or false, got {query.get(name)!r}")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ControlPlane:
    def __init__(
        self,
        gateway: Gateway,
        kube: ControlKube,
        uploads: UploadStore | None,
        *,
        requests_per_minute: int = 0,
    ) -> None:
        self.gateway = gateway
        self.kube = kube
        self.uploads = uploads
        self.requests_per_minute = requests_per_minute

    # ------------------------------------------------------------------ callers

    async def caller(self, key: str | None) -> Principal:
        """The caller (401), within the account's control-plane rate (429)."""
        try:
            principal = authenticate(key, self.gateway.state, datetime.now(UTC))
        except AuthError as error:
            raise ApiError(error.status, error.message) from None
        if self.requests_per_minute > 0:
            decision = await self.gateway.limiter.hit(
                f"control:{principal.account}", self.requests_per_minute, 60.0
            )
            if not decision.allowed:
                raise ApiError(
                    429,
                    f"account {principal.account} is over {self.requests_per_minute} "
                    f"control-plane requests per minute; retry in "
                    f"{max(1, round(decision.reset_after_s))} s",
                )
        return principal

    def directory(self, account: str) -> Directory:
        emails = {
            str(user["metadata"]["name"]): str((user.get("spec") or {}).get("email"))
            for (namespace, _), user in self.gateway.state.users.objects.items()
            if namespace == account and (user.get("spec") or {}).get("email")
        }
        return Directory(emails)

    def act_as(self, principal: Principal, grant: Grant) -> Mapping[str, str] | None:
        if not grant.impersonate:
            log.info("writing as the gateway: %s", grant.reason)
            return None
        return impersonation_headers(self.gateway.state.user(principal.account, principal.user))

    # ------------------------------------------------------------------ generic

    async def _create(self, obj: Obj, act_as: Mapping[str, str] | None) -> Obj:
        result = validate(obj)
        if not result.ok:
            problems = "; ".join(str(error) for error in result.errors)
            raise invalid(f"{obj['kind']} {obj['metadata']['name']!r} is invalid: {problems}")
        return await self.kube.create(obj, act_as)

    def _json(self, resource: ResourceKind, obj: Obj, account: str) -> Json:
        return resource.to_json(obj, self.directory(account))

    async def get(
        self, resource: ResourceKind, principal: Principal, account: str, name: str, query: Query
    ) -> Json:
        authorize_resource(principal, account, Action.READ)
        mask = parse_mask(query.get("readMask"), resource.fields, "readMask")
        obj = await self.kube.get(resource.kind, account, name)
        return apply_read_mask(self._json(resource, obj, account), mask)

    def page(self, resource: ResourceKind, items: list[Json], query: Query) -> Json:
        conditions = parse_filter(query.get("filter"), resource.filterable)
        order = parse_order_by(query.get("orderBy"), resource.filterable) or list(
            resource.default_order
        )
        mask = parse_mask(query.get("readMask"), resource.fields, "readMask")
        size = page_size(query.get("pageSize"))
        selected = sort_items([i for i in items if matches(i, conditions)], order)
        params = [query.get(p) or "" for p in ("filter", "orderBy", "readMask", "showDeleted")]
        page = paginate(selected, size, query.get("pageToken"), params)
        answer: Json = {
            resource.list_key: [apply_read_mask(item, mask) for item in page.items],
            "totalSize": page.total_size,
        }
        if page.next_page_token:
            answer["nextPageToken"] = page.next_page_token
        return answer

    async def list(
        self, resource: ResourceKind, principal: Principal, account: str, query: Query
    ) -> Json:
        authorize_resource(principal, account, Action.READ)
        objs = await self.kube.list(resource.kind, account)
        directory = self.directory(account)
        items = [resource.to_json(o, directory) for o in objs if not is_terminating(o)]
        return self.page(resource, items, query)

    async def _owned(
        self, resource: ResourceKind, principal: Principal, account: str, name: str, action: Action
    ) -> tuple[Obj, Mapping[str, str] | None]:
        obj = await self.kube.get(resource.kind, account, name)
        grant = authorize_resource(principal, account, action, created_by(obj))
        return obj, self.act_as(principal, grant)

    async def update(
        self,
        resource: ResourceKind,
        principal: Principal,
        account: str,
        name: str,
        body: Json,
        query: Query,
    ) -> Json:
        if not resource.updatable:
            raise ApiError(405, f"{resource.collection} cannot be updated")
        mask = parse_mask(query.get("updateMask"), resource.fields, "updateMask")
        # Read, change, write with the resourceVersion read; the operator's status writes
        # bump it too, so a conflict is read again (a few times) rather than refused.
        for attempt in range(CONFLICT_RETRIES):
            if resource is users.USERS:
                authorize_users(principal, account, Action.UPDATE)
                obj = await self.kube.get(resource.kind, account, name)
                act_as = self.act_as(principal, Grant(impersonate=True))
            else:
                obj, act_as = await self._owned(resource, principal, account, name, Action.UPDATE)
            new = {**obj, "spec": updated_spec(obj.get("spec") or {}, body, mask, resource)}
            new.pop("status", None)
            result = validate(new, old=obj)
            if not result.ok:
                problems = "; ".join(str(error) for error in result.errors)
                raise invalid(f"{resource.kind} {name!r}: {problems}")
            try:
                stored = await self.kube.request(
                    "PUT", resource.kind, account, name, body=new, act_as=act_as
                )
            except ApiError as error:
                if not error.aborted or attempt == CONFLICT_RETRIES - 1:
                    raise
                continue
            return self._json(resource, stored, account)
        raise AssertionError("unreachable")

    async def delete(
        self, resource: ResourceKind, principal: Principal, account: str, name: str
    ) -> Json:
        if resource is users.USERS:
            authorize_users(principal, account, Action.DELETE)
            act_as = self.act_as(principal, Grant(impersonate=True))
        else:
            _, act_as = await self._owned(resource, principal, account, name, Action.DELETE)
        await self.kube.delete(resource.kind, account, name, act_as)
        return {}

    # ------------------------------------------------------------------ accounts

    async def get_account(self, principal: Principal, account: str, query: Query) -> Json:
        authorize_resource(principal, account, Action.READ)
        mask = parse_mask(query.get("readMask"), ACCOUNTS.fields, "readMask")
        obj = await self.kube.get("Account", None, account)
        return apply_read_mask(self._json(ACCOUNTS, obj, account), mask)

    async def list_accounts(self, principal: Principal, query: Query) -> Json:
        """The accounts the key can act in: its own."""
        obj = await self.kube.get("Account", None, principal.account)
        return self.page(ACCOUNTS, [self._json(ACCOUNTS, obj, principal.account)], query)

    # ------------------------------------------------------------------ creates

    async def _create_resource(self, principal: Principal, account: str, obj: Obj) -> Json:
        grant = authorize_resource(principal, account, Action.CREATE)
        created = await self._create(obj, self.act_as(principal, grant))
        resource = RESOURCES_BY_KIND[obj["kind"]]
        return self._json(resource, created, account)

    async def create_user(
        self, principal: Principal, account: str, body: Json, query: Query
    ) -> Json:
        authorize_users(principal, account, Action.CREATE)
        obj = users.create(account, query.get("userId"), body, principal.user)
        created = await self._create(obj, self.act_as(principal, Grant(impersonate=True)))
        return self._json(users.USERS, created, account)

    async def create_model(self, principal: Principal, account: str, body: Json) -> Json:
        model_id = body.get("modelId")
        if not isinstance(model_id, str) or not model_id:
            raise invalid("modelId: required")
        if body.get("cluster"):
            raise invalid("cluster: BYOC clusters are not supported by Hearth")
        spec = body.get("model") or {}
        if not isinstance(spec, dict):
            raise invalid("model: must be an object")
        return await self._create_resource(
            principal, account, models.create(account, model_id, spec, principal.user)
        )

    async def create_deployment(
        self, principal: Principal, account: str, body: Json, query: Query
    ) -> Json:
        if _flag(query, "disableAutoDeploy"):
            raise invalid(
                "disableAutoDeploy: not supported; Hearth always deploys the base model onto "
                "a new deployment"
            )
        deployment_id = query.get("deploymentId") or random_id(8)
        obj = deployments.create(account, deployment_id, body, principal.user)
        if _flag(query, "validateOnly"):
            authorize_resource(principal, account, Action.CREATE)
            result = validate(obj)
            if not result.ok:
                problems = "; ".join(str(error) for error in result.errors)
                raise invalid(f"Deployment {deployment_id!r} is invalid: {problems}")
            return self._json(deployments.DEPLOYMENTS, result.defaulted, account)
        return await self._create_resource(principal, account, obj)

    async def scale(self, principal: Principal, account: str, name: str, body: Json) -> Json:
        patch = deployments.scale_patch(body)
        _, act_as = await self._owned(
            deployments.DEPLOYMENTS, principal, account, name, Action.UPDATE
        )
        await self.kube.merge_patch("Deployment", account, name, patch, act_as, sub="scale")
        obj = await self.kube.get("Deployment", account, name)
        return self._json(deployments.DEPLOYMENTS, obj, account)

    async def load_lora(self, principal: Principal, account: str, body: Json, query: Query) -> Json:
        if _flag(query, "replaceMergedAddon"):
            raise invalid("replaceMergedAddon: hot-reload deployments are not supported by Hearth")
        return await self._create_resource(
            principal, account, deployed_models.create(account, body, principal.user)
        )

    async def create_job(
        self, principal: Principal, account: str, body: Json, query: Query
    ) -> Json:
        job_id = query.get("supervisedFineTuningJobId") or fine_tuning_jobs.new_id()
        return await self._create_resource(
            principal, account, fine_tuning_jobs.create(account, job_id, body, principal.user)
        )

    async def cancel_job(self, principal: Principal, account: str, name: str) -> Json:
        obj, act_as = await self._owned(
            fine_tuning_jobs.FINE_TUNING_JOBS, principal, account, name, Action.UPDATE
        )
        state = (obj.get("status") or {}).get("state")
        if state in TERMINAL_JOB_STATES:
            raise ApiError(412, f"job {name!r} has already finished ({state}); nothing to cancel")
        await self.kube.merge_patch(
            "FineTuningJob", account, name, {"spec": {"cancelled": True}}, act_as
        )
        return {}

    # ------------------------------------------------------------------ API keys

    async def create_api_key(
        self, principal: Principal, account: str, user_id: str, body: Json
    ) -> Json:
        grant = authorize_api_keys(principal, account, user_id, Action.CREATE)
        user = await self.kube.get("User", account, user_id)  # 404 for a missing user
        spec = body.get("apiKey") or {}
        if not isinstance(spec, dict):
            raise invalid("apiKey: must be an object")
        act_as = self.act_as(principal, grant)
        key, salt = keys.generate_key(), keys.new_salt()
        key_id = api_keys.new_key_id()
        obj = api_keys.create(account, user_id, key_id, spec, principal.user)
        created = await self._create(obj, act_as)
        # The status subresource is the operator's and the gateway's, never a user's. It is
        # the status the operator's own planner gives a gateway-issued key, so the
        # operator's next pass writes the same.
        status = api_keys.issued_status(created, user, key, salt, datetime.now(UTC))
        stored = await self.kube.merge_patch(
            "ApiKey", account, key_id, {"status": status}, None, sub="status"
        )
        answer = self._json(api_keys.API_KEYS, stored, account)
        answer["key"] = key
        return answer

    async def list_api_keys(
        self, principal: Principal, account: str, user_id: str, query: Query
    ) -> Json:
        authorize_api_keys(principal, account, user_id, Action.READ)
        directory = self.directory(account)
        items = [
            api_keys.to_json(obj, directory)
            for obj in await self.kube.list("ApiKey", account)
            if (obj.get("spec") or {}).get("user") == user_id and not is_terminating(obj)
        ]
        return self.page(api_keys.API_KEYS, items, query)

    async def delete_api_key(
        self, principal: Principal, account: str, user_id: str, body: Json
    ) -> Json:
        key_id = body.get("keyId")
        if not isinstance(key_id, str) or not key_id:
            raise invalid("keyId: required")
        grant = authorize_api_keys(principal, account, user_id, Action.DELETE)
        obj = await self.kube.get("ApiKey", account, key_id)
        if (obj.get("spec") or {}).get("user") != user_id:
            raise ApiError(404, f"ApiKey {key_id!r} not found for user {user_id!r}")
        await self.kube.delete("ApiKey", account, key_id, self.act_as(principal, grant))
        return {}

    # ------------------------------------------------------------------ datasets

    def _store(self) -> UploadStore:
        if self.uploads is None:
            raise ApiError(
                412,
                "uploads are not enabled on this gateway (start it with --upload-dir); create "
                "the dataset with dataset.externalUrl instead",
            )
        return self.uploads

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
            return await self._create_resource(principal, account, obj)
        authorize_resource(principal, account, Action.CREATE)
        # Validate what can be validated now, with a placeholder file.
        probe = datasets.create_object(
            account, dataset_id, spec, datasets.uploaded_uri(account, dataset_id, "x.jsonl"), ""
        )
        checked = validate(probe)
        if not checked.ok:
            problems = "; ".join(str(error) for error in checked.errors)
            raise invalid(f"Dataset {dataset_id!r} is invalid: {problems}")
        store = self._store()
        try:
            await self.kube.get("Dataset", account, dataset_id)
        except ApiError as error:
            if error.status != 404:
                raise
        else:
            raise ApiError(409, f"Dataset {dataset_id!r} already exists")
        if await asyncio.to_thread(store.read_record, account, dataset_id) is not None:
            raise ApiError(409, f"Dataset {dataset_id!r} already exists (waiting for its upload)")
        now = _now()
        record = {"spec": spec, "createdBy": principal.user, "createTime": now, "files": {}}
        await asyncio.to_thread(store.write_record, account, dataset_id, record)
        return datasets.pending_json(account, dataset_id, record, self.directory(account))

    async def _record(self, account: str, dataset_id: str) -> Json | None:
        if self.uploads is None:
            return None
        return await asyncio.to_thread(self.uploads.read_record, account, dataset_id)

    async def get_dataset(
        self, principal: Principal, account: str, dataset_id: str, query: Query
    ) -> Json:
        try:
            return await self.get(datasets.DATASETS, principal, account, dataset_id, query)
        except ApiError as error:
            if error.status != 404:
                raise
            record = await self._record(account, dataset_id)
            if record is None:
                raise
        mask = parse_mask(query.get("readMask"), datasets.DATASETS.fields, "readMask")
        pending = datasets.pending_json(account, dataset_id, record, self.directory(account))
        return apply_read_mask(pending, mask)

    async def list_datasets(self, principal: Principal, account: str, query: Query) -> Json:
        authorize_resource(principal, account, Action.READ)
        directory = self.directory(account)
        objs = [o for o in await self.kube.list("Dataset", account) if not is_terminating(o)]
        items = [datasets.to_json(o, directory) for o in objs]
        names = {o["metadata"]["name"] for o in objs}
        if self.uploads is not None:
            store = self.uploads
            pending = await asyncio.to_thread(lambda: list(store.pending(account)))
            items += [
                datasets.pending_json(account, dataset_id, record, directory)
                for dataset_id, record in pending
                if dataset_id not in names
            ]
        return self.page(datasets.DATASETS, items, query)

    async def delete_dataset(self, principal: Principal, account: str, dataset_id: str) -> Json:
        try:
            return await self.delete(datasets.DATASETS, principal, account, dataset_id)
        except ApiError as error:
            if error.status != 404:
                raise
            record = await self._record(account, dataset_id)
            if record is None or self.uploads is None:
                raise
        authorize_resource(principal, account, Action.DELETE, record.get("createdBy"))
        await asyncio.to_thread(self.uploads.remove, account, dataset_id)
        return {}

    async def _pending_for_write(
        self, principal: Principal, account: str, dataset_id: str
    ) -> tuple[UploadStore, Json, Grant]:
        store = self._store()
        record = await asyncio.to_thread(store.read_record, account, dataset_id)
        if record is None:
            try:
                await self.kube.get("Dataset", account, dataset_id)
            except ApiError:
                raise ApiError(404, f"Dataset {dataset_id!r} not found") from None
            raise ApiError(
                412,
                f"Dataset {dataset_id!r} already has its file; datasets are immutable, create "
                "a new one",
            )
        grant = authorize_resource(principal, account, Action.UPDATE, record.get("createdBy"))
        return store, record, grant

    async def upload_endpoint(
        self, principal: Principal, account: str, dataset_id: str, body: Json, base_url: str
    ) -> Json:
        sizes = body.get("filenameToSize")
        if not isinstance(sizes, dict) or not sizes:
            raise invalid("filenameToSize: required, a map of file name to size in bytes")
        store, record, _ = await self._pending_for_write(principal, account, dataset_id)
        files: dict[str, Json] = {}
        urls: dict[str, str] = {}
        uris: dict[str, str] = {}
        for filename, raw_size in sizes.items():
            check_filename(str(filename))
            try:
                size = int(raw_size)
            except (TypeError, ValueError):
                raise invalid(f"filenameToSize.{filename}: not a size in bytes") from None
            signed = store.sign(account, dataset_id, filename, size)
            files[filename] = {"size": size}
            urls[filename] = base_url.rstrip("/") + store.signed_path(signed)
            uris[filename] = datasets.uploaded_uri(account, dataset_id, filename)
        record = {**record, "files": files, "updateTime": _now()}
        await asyncio.to_thread(store.write_record, account, dataset_id, record)
        return {"filenameToSignedUrls": urls, "filenameToUnsignedUris": uris}

    async def receive_upload(
        self, signed: Signed, signature: str, chunks: Callable[[], Any]
    ) -> Json:
        store = self._store()
        store.verify(signed, signature)
        record = await asyncio.to_thread(store.read_record, signed.account, signed.dataset)
        registered = ((record or {}).get("files") or {}).get(signed.filename)
        if record is None or registered is None or registered.get("size") != signed.size:
            raise ApiError(412, f"{signed.filename} is not registered for upload (any more)")
        received = await store.receive(signed, chunks())
        latest = await asyncio.to_thread(store.read_record, signed.account, signed.dataset)
        if latest is None:
            raise ApiError(404, f"Dataset {signed.dataset!r} was deleted during the upload")
        latest.setdefault("files", {})[signed.filename] = received
        latest["updateTime"] = _now()
        await asyncio.to_thread(store.write_record, signed.account, signed.dataset, latest)
        return {"filename": signed.filename, **received}

    async def validate_upload(self, principal: Principal, account: str, dataset_id: str) -> Json:
        store, record, grant = await self._pending_for_write(principal, account, dataset_id)
        files: dict[str, Json] = record.get("files") or {}
        if not files:
            raise ApiError(412, f"Dataset {dataset_id!r}: no file was uploaded (getUploadEndpoint)")
        missing = sorted(name for name, info in files.items() if "sha256" not in info)
        if missing:
            raise ApiError(412, f"Dataset {dataset_id!r}: not uploaded yet: {', '.join(missing)}")
        for name, info in files.items():
            actual = await asyncio.to_thread(store.sha256, account, dataset_id, name)
            if actual != info["sha256"]:
                raise ApiError(
                    412, f"Dataset {dataset_id!r}: {name} changed after its upload (checksum)"
                )
        filename = await asyncio.to_thread(store.combined, account, dataset_id, sorted(files))
        obj = datasets.create_object(
            account,
            dataset_id,
            record.get("spec") or {},
            datasets.uploaded_uri(account, dataset_id, filename),
            str(record.get("createdBy") or principal.user),
        )
        await self._create(obj, self.act_as(principal, grant))
        await asyncio.to_thread(store.drop_record, account, dataset_id)
        return {}


RESOURCES_BY_KIND: dict[str, ResourceKind] = {
    r.kind: r
    for r in (
        users.USERS,
        api_keys.API_KEYS,
        models.MODELS,
        deployments.DEPLOYMENTS,
        deployed_models.DEPLOYED_MODELS,
        datasets.DATASETS,
        fine_tuning_jobs.FINE_TUNING_JOBS,
    )
}
