"""The control plane's operations: authorise, translate, call Kubernetes, translate back.

Reads go to the API server (so a client reads its own writes at once); who is calling
comes from the gateway's caches (the same key check as inference). Writes are validated
with ``hearth.validation`` first, so a bad field is a 400 that names it, and then go to
the API server as the caller (see ``authz`` and ``kube``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import UTC, datetime

from hearth import api_keys as keys
from hearth.validation import validate
from hearth_operator.planning.common import is_terminating
from hearth_operator.planning.finetuning_job import workload_name

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
    flag,
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
from .staged import Staged
from .uploads import UploadStore

log = logging.getLogger(__name__)

Query = Mapping[str, str]
TERMINAL_JOB_STATES = frozenset(
    {"JOB_STATE_COMPLETED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EARLY_STOPPED"}
)
#: Read-modify-write attempts of an update that meets concurrent writes.
CONFLICT_RETRIES = 5
#: How long a resume waits for each of the old run's objects to go (20 s, in steps of
#: RESUME_POLL_S), so that both waits fit in the SDK's 60-second timeout.
RESUME_POLL_S = 0.25
RESUME_WAIT_STEPS = 80


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
        #: Datasets and models that wait for uploaded files; downloads.
        self.staged = Staged(self)

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

    async def create_validated(self, obj: Obj, act_as: Mapping[str, str] | None) -> Obj:
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

    async def create_resource(self, principal: Principal, account: str, obj: Obj) -> Json:
        grant = authorize_resource(principal, account, Action.CREATE)
        created = await self.create_validated(obj, self.act_as(principal, grant))
        resource = RESOURCES_BY_KIND[obj["kind"]]
        return self._json(resource, created, account)

    async def create_user(
        self, principal: Principal, account: str, body: Json, query: Query
    ) -> Json:
        authorize_users(principal, account, Action.CREATE)
        obj = users.create(account, query.get("userId"), body, principal.user)
        created = await self.create_validated(obj, self.act_as(principal, Grant(impersonate=True)))
        return self._json(users.USERS, created, account)

    async def create_deployment(
        self, principal: Principal, account: str, body: Json, query: Query
    ) -> Json:
        if flag(query, "disableAutoDeploy"):
            raise invalid(
                "disableAutoDeploy: not supported; Hearth always deploys the base model onto "
                "a new deployment"
            )
        deployment_id = query.get("deploymentId") or random_id(8)
        obj = deployments.create(account, deployment_id, body, principal.user)
        if flag(query, "validateOnly"):
            authorize_resource(principal, account, Action.CREATE)
            result = validate(obj)
            if not result.ok:
                problems = "; ".join(str(error) for error in result.errors)
                raise invalid(f"Deployment {deployment_id!r} is invalid: {problems}")
            return self._json(deployments.DEPLOYMENTS, result.defaulted, account)
        return await self.create_resource(principal, account, obj)

    async def scale(self, principal: Principal, account: str, name: str, body: Json) -> Json:
        patch = deployments.scale_patch(body)
        _, act_as = await self._owned(
            deployments.DEPLOYMENTS, principal, account, name, Action.UPDATE
        )
        await self.kube.merge_patch("Deployment", account, name, patch, act_as, sub="scale")
        obj = await self.kube.get("Deployment", account, name)
        return self._json(deployments.DEPLOYMENTS, obj, account)

    async def deployment_events(self, principal: Principal, account: str, name: str) -> Json:
        """A Hearth extension: the Events about a Deployment, read as the gateway (every role
        may read deployments; the gateway's ClusterRole may list events)."""
        authorize_resource(principal, account, Action.READ)
        await self.kube.get("Deployment", account, name)  # 404 for an unknown deployment
        found = await self.kube.events_of(account, "Deployment", name)
        return {"events": deployments.events_json(found)}

    async def load_lora(self, principal: Principal, account: str, body: Json, query: Query) -> Json:
        if flag(query, "replaceMergedAddon"):
            raise invalid("replaceMergedAddon: hot-reload deployments are not supported by Hearth")
        return await self.create_resource(
            principal, account, deployed_models.create(account, body, principal.user)
        )

    async def create_job(
        self, principal: Principal, account: str, body: Json, query: Query
    ) -> Json:
        job_id = query.get("supervisedFineTuningJobId") or fine_tuning_jobs.new_id()
        return await self.create_resource(
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

    async def resume_job(self, principal: Principal, account: str, name: str) -> Json:
        """Start a failed or cancelled job again; the trainer resumes from its last checkpoint.

        A finished FineTuningJob stays as it ended (the operator never restarts it, and the
        CRD lets neither the spec nor ``cancelled`` go back), so the job is created anew
        under the same name with the same spec: the trainer's output directory is named
        after the job, and a run with the same settings continues from the checkpoint it
        finds there (the last one it wrote, on SIGTERM when cancelled). The old trainer
        Job is removed first, so the operator does not take its outcome for the new run's.
        """
        resource = fine_tuning_jobs.FINE_TUNING_JOBS
        obj, act_as = await self._owned(resource, principal, account, name, Action.UPDATE)
        state = (obj.get("status") or {}).get("state")
        if state not in fine_tuning_jobs.RESUMABLE_STATES:
            raise ApiError(
                412,
                f"job {name!r} is {state or 'not started'}; only a failed or cancelled job "
                "can be resumed",
            )
        await self._remove_trainer(account, workload_name(name))
        fresh = fine_tuning_jobs.resumed(obj, principal.user)
        await self.kube.delete("FineTuningJob", account, name, act_as)
        created = await self._create_when_gone(fresh, act_as)
        return self._json(resource, created, account)

    async def _remove_trainer(self, account: str, workload: str) -> None:
        """Delete the batch/v1 Job of a finished run (as the gateway: users' roles do not
        cover the operator's workloads) and wait until it is gone."""
        try:
            await self.kube.delete("Job", account, workload, None)
        except ApiError as error:
            if error.status != 404:
                raise
            return
        for _ in range(RESUME_WAIT_STEPS):
            try:
                await self.kube.get("Job", account, workload)
            except ApiError as error:
                if error.status == 404:
                    return
                raise
            await asyncio.sleep(RESUME_POLL_S)
        raise ApiError(
            503, f"the trainer of job {workload!r} is still being removed; resume again shortly"
        )

    async def _create_when_gone(self, obj: Obj, act_as: Mapping[str, str] | None) -> Obj:
        """Create ``obj`` once an object of its name being deleted is gone (finalizers)."""
        for _ in range(RESUME_WAIT_STEPS):
            try:
                return await self.create_validated(obj, act_as)
            except ApiError as error:
                if error.status != 409 or error.aborted:
                    raise
            await asyncio.sleep(RESUME_POLL_S)
        raise ApiError(503, f"job {obj['metadata']['name']!r} is still being deleted")

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
        created = await self.create_validated(obj, act_as)
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
