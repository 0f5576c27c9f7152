"""The control plane's Kubernetes calls: read, create, patch, delete, as the caller.

Writes carry ``Impersonate-User`` (and for service accounts the API server adds their
groups) when the route says so: Kubernetes RBAC then decides as it would for the user's
own kubectl. The subject is the one the operator binds for the User
(``hearth_operator.planning.user``): a person's email as a Kubernetes User, a service
account as ``system:serviceaccount:<account>:<user>``. Reads use the gateway's identity
(every role may view its account). Errors become :class:`~.errors.ApiError` with the
HTTP status Fireworks uses.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import httpx
import kubernetes

from hearth.api import GROUP, VERSION

from ..cluster.client import _ssl_context
from .errors import ApiError

Obj = dict[str, Any]

_PATHS = {
    "Account": "accounts",
    "User": "users",
    "ApiKey": "apikeys",
    "Model": "models",
    "Deployment": "deployments",
    "DeployedModel": "deployedmodels",
    "Dataset": "datasets",
    "FineTuningJob": "finetuningjobs",
}
#: Kinds outside hearth.dev the control plane touches: a fine-tuning job's trainer (the
#: batch/v1 Job the operator runs), removed before the job is resumed.
_OTHER_GROUPS = {"Job": ("batch/v1", "jobs"), "Event": ("v1", "events")}


def impersonation_headers(user: Obj | None) -> dict[str, str]:
    """The headers that make a request act as ``user``'s Kubernetes subject.

    Raises ApiError 403 when the user has no subject (a person without an email)."""
    if user is None:
        raise ApiError(403, "permission denied: the caller's User object is gone")
    spec = user.get("spec") or {}
    meta = user.get("metadata") or {}
    if spec.get("serviceAccount"):
        return {
            "Impersonate-User": f"system:serviceaccount:{meta.get('namespace')}:{meta.get('name')}"
        }
    email = spec.get("email")
    if not email:
        raise ApiError(403, f"permission denied: user {meta.get('name')!r} has no email to act as")
    return {"Impersonate-User": str(email)}


def path(kind: str, namespace: str | None, name: str | None = None, sub: str = "") -> str:
    group_version, plural = _OTHER_GROUPS.get(kind) or (f"{GROUP}/{VERSION}", _PATHS[kind])
    root = "/apis" if "/" in group_version else "/api"  # the core group has no name
    base = f"{root}/{group_version}"
    if namespace is not None:
        base += f"/namespaces/{namespace}"
    base += f"/{plural}"
    if name is not None:
        base += f"/{name}"
    return base + (f"/{sub}" if sub else "")


def _message(text: str) -> tuple[str, str]:
    try:
        body = json.loads(text)
        return str(body.get("message") or text), str(body.get("reason") or "")
    except (ValueError, AttributeError):
        return text, ""


def api_error(status: int, text: str, kind: str, name: str | None) -> ApiError:
    message, reason = _message(text)
    what = f"{kind} {name!r}" if name else kind
    if status == 404:
        return ApiError(404, f"{what} not found")
    if status == 409 and reason == "AlreadyExists":
        return ApiError(409, f"{what} already exists")
    if status == 409:
        return ApiError(409, f"{what} was changed meanwhile; read it again and retry", aborted=True)
    if status in (400, 422):
        return ApiError(400, message)
    if status == 403:
        return ApiError(403, f"permission denied by Kubernetes RBAC: {message}")
    if status == 429:
        return ApiError(429, f"the Kubernetes API is throttling requests: {message}")
    if status == 0:
        return ApiError(503, f"the Kubernetes API cannot be reached: {message}")
    return ApiError(502, f"the Kubernetes API answered {status}: {message}")


class ControlKube:
    """One httpx client to the API server, with the gateway's credentials."""

    def __init__(
        self, configuration: kubernetes.client.Configuration, *, timeout: float = 30.0
    ) -> None:
        self.configuration = configuration
        self._http = httpx.AsyncClient(
            base_url=configuration.host.rstrip("/"),
            verify=_ssl_context(configuration),
            timeout=httpx.Timeout(timeout, connect=5.0),
        )

    async def close(self) -> None:
        await self._http.aclose()

    def _headers(self, extra: Mapping[str, str] | None) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        token = self.configuration.get_api_key_with_prefix("authorization")
        if token:
            headers["Authorization"] = token
        headers.update(extra or {})
        return headers

    async def request(
        self,
        method: str,
        kind: str,
        namespace: str | None,
        name: str | None = None,
        *,
        sub: str = "",
        body: Obj | None = None,
        content_type: str = "application/json",
        act_as: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> Obj:
        headers = self._headers(act_as)
        content = None
        if body is not None:
            content = json.dumps(body).encode()
            headers["Content-Type"] = content_type
        url = path(kind, namespace, name, sub)
        try:
            response = await self._http.request(
                method, url, headers=headers, content=content, params=params
            )
        except httpx.HTTPError as error:
            raise api_error(0, f"{type(error).__name__}: {error}", kind, name) from error
        if response.status_code >= 400:
            raise api_error(response.status_code, response.text, kind, name)
        result: Obj = response.json()
        return result

    async def get(self, kind: str, namespace: str | None, name: str) -> Obj:
        return await self.request("GET", kind, namespace, name)

    async def events_of(self, namespace: str, kind: str, name: str) -> list[Obj]:
        """The Events about one object of ``kind`` named ``name`` (the API server selects)."""
        selector = f"involvedObject.kind={kind},involvedObject.name={name}"
        page = await self.request(
            "GET", "Event", namespace, params={"fieldSelector": selector, "limit": "500"}
        )
        items: list[Obj] = page.get("items") or []
        return items

    async def list(self, kind: str, namespace: str | None) -> list[Obj]:
        items: list[Obj] = []
        params = {"limit": "500"}
        while True:
            page = await self.request("GET", kind, namespace, params=params)
            items.extend(page.get("items") or [])
            cont = (page.get("metadata") or {}).get("continue")
            if not cont:
                return items
            params = {"limit": "500", "continue": str(cont)}

    async def create(self, obj: Obj, act_as: Mapping[str, str] | None) -> Obj:
        meta = obj["metadata"]
        return await self.request(
            "POST", obj["kind"], meta.get("namespace"), body=obj, act_as=act_as
        )

    async def merge_patch(
        self,
        kind: str,
        namespace: str | None,
        name: str,
        patch: Obj,
        act_as: Mapping[str, str] | None,
        sub: str = "",
    ) -> Obj:
        return await self.request(
            "PATCH",
            kind,
            namespace,
            name,
            sub=sub,
            body=patch,
            content_type="application/merge-patch+json",
            act_as=act_as,
        )

    async def delete(
        self, kind: str, namespace: str | None, name: str, act_as: Mapping[str, str] | None
    ) -> Obj:
        return await self.request(
            "DELETE",
            kind,
            namespace,
            name,
            body={"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"},
            act_as=act_as,
        )
