"""HTTP routes of the control plane: Fireworks' ``/v1/accounts/...`` paths, as the
``fireworks-ai`` SDK calls them, and the signed upload and download URLs
(``/uploads/v1/...``, ``/downloads/v1/...``)."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from ..auth import Principal, key_from_headers
from ..errors import GatewayError
from . import deployed_models, deployments, fine_tuning_jobs, usage, users
from .common import Json, ResourceKind
from .downloads import Download
from .errors import ApiError, error_response, invalid
from .plane import ControlPlane
from .staged import DATASET, MODEL, Uploadable
from .uploads import UPLOADABLE, Signed

log = logging.getLogger(__name__)

#: Collections whose objects may wait for uploaded files.
STAGED: dict[str, Uploadable] = {"datasets": DATASET, "models": MODEL}
#: Collections with the standard get / list / update / delete.
COLLECTIONS: dict[str, ResourceKind] = {
    "users": users.USERS,
    "deployments": deployments.DEPLOYMENTS,
    "deployedModels": deployed_models.DEPLOYED_MODELS,
    "supervisedFineTuningJobs": fine_tuning_jobs.FINE_TUNING_JOBS,
}
MAX_BODY = 4 * 1024 * 1024


def control_of(request: Request) -> ControlPlane:
    plane: ControlPlane | None = getattr(request.app.state, "control", None)
    if plane is None:
        raise ApiError(503, "the control plane is not running on this gateway")
    return plane


async def read_json(request: Request) -> Json:
    if request.method in ("GET", "DELETE") and not request.headers.get("content-length"):
        return {}
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY:
            raise ApiError(413, f"the request body is larger than {MAX_BODY} bytes")
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError as error:
        raise invalid(f"the request body is not valid JSON: {error}") from None
    if not isinstance(body, dict):
        raise invalid("the request body must be a JSON object")
    return body


def public_base_url(request: Request, configured: str | None) -> str:
    if configured:
        return configured
    scheme = request.headers.get("x-forwarded-proto") or request.url.scheme
    host = request.headers.get("x-forwarded-host") or request.headers.get("host") or "localhost"
    return f"{scheme}://{host}"


Handler = Callable[[ControlPlane, Principal, Request], Awaitable[Json]]


def endpoint(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    async def run(request: Request) -> Response:
        try:
            plane = control_of(request)
            principal = await plane.caller(key_from_headers(request.headers))
            return JSONResponse(await handler(plane, principal, request))
        except ApiError as error:
            return error_response(error.status, error.message, aborted=error.aborted)
        except GatewayError as error:
            return error_response(error.status, error.message)

    return run


def _split(item: str) -> tuple[str, str]:
    name, _, verb = item.partition(":")
    return name, verb


def _unknown(request: Request) -> ApiError:
    return ApiError(404, f"no such method: {request.method} {request.url.path}")


async def accounts(plane: ControlPlane, principal: Principal, request: Request) -> Json:
    return await plane.list_accounts(principal, request.query_params)


async def account(plane: ControlPlane, principal: Principal, request: Request) -> Json:
    return await plane.get_account(principal, request.path_params["account"], request.query_params)


async def account_usage(plane: ControlPlane, principal: Principal, request: Request) -> Json:
    """Hearth extension: the usage ledger's sums for the account (see ``usage``)."""
    return await usage.account_usage(
        plane.gateway.ledger,
        principal,
        request.path_params["account"],
        request.query_params,
        datetime.now(UTC),
    )


async def collection(plane: ControlPlane, principal: Principal, request: Request) -> Json:
    account_id, name = request.path_params["account"], request.path_params["collection"]
    query = request.query_params
    staged = STAGED.get(name)
    if staged is not None:
        if request.method == "GET":
            return await plane.staged.list_items(staged, principal, account_id, query)
        body = await read_json(request)
        if staged is DATASET:
            return await plane.staged.create_dataset(principal, account_id, body)
        return await plane.staged.create_model(principal, account_id, body)
    resource = COLLECTIONS.get(name)
    if resource is None:
        raise _unknown(request)
    if request.method == "GET":
        return await plane.list(resource, principal, account_id, query)
    body = await read_json(request)
    creates: dict[str, Callable[[], Awaitable[Json]]] = {
        "users": lambda: plane.create_user(principal, account_id, body, query),
        "deployments": lambda: plane.create_deployment(principal, account_id, body, query),
        "deployedModels": lambda: plane.load_lora(principal, account_id, body, query),
        "supervisedFineTuningJobs": lambda: plane.create_job(principal, account_id, body, query),
    }
    return await creates[name]()


async def item(plane: ControlPlane, principal: Principal, request: Request) -> Json:
    account_id, name = request.path_params["account"], request.path_params["collection"]
    item_id, verb = _split(request.path_params["item"])
    method, query = request.method, request.query_params
    staged = STAGED.get(name)
    if staged is not None:
        return await _staged_item(plane, principal, request, staged, account_id, item_id, verb)
    resource = COLLECTIONS.get(name)
    if resource is None:
        raise _unknown(request)
    if not verb:
        if method == "GET":
            return await plane.get(resource, principal, account_id, item_id, query)
        if method == "PATCH":
            body = await read_json(request)
            return await plane.update(resource, principal, account_id, item_id, body, query)
        if method == "DELETE":
            return await plane.delete(resource, principal, account_id, item_id)
    if name == "deployments" and verb == "events" and method == "GET":
        return await plane.deployment_events(principal, account_id, item_id)
    if name == "deployments" and verb == "scale" and method in ("PATCH", "POST"):
        return await plane.scale(principal, account_id, item_id, await read_json(request))
    if name == "supervisedFineTuningJobs" and verb == "cancel" and method == "POST":
        return await plane.cancel_job(principal, account_id, item_id)
    if name == "supervisedFineTuningJobs" and verb == "resume" and method == "POST":
        return await plane.resume_job(principal, account_id, item_id)
    raise _unknown(request)


async def _staged_item(
    plane: ControlPlane,
    principal: Principal,
    request: Request,
    up: Uploadable,
    account_id: str,
    item_id: str,
    verb: str,
) -> Json:
    method, query, staged = request.method, request.query_params, plane.staged
    base = public_base_url(request, plane.gateway.config.public_url)
    if not verb and method == "GET":
        return await staged.get_item(up, principal, account_id, item_id, query)
    if not verb and method == "DELETE":
        return await staged.delete_item(up, principal, account_id, item_id)
    if not verb and method == "PATCH" and up is MODEL:
        body = await read_json(request)
        return await staged.update_model(principal, account_id, item_id, body, query)
    if verb == "getUploadEndpoint" and method == "POST":
        body = await read_json(request)
        return await staged.upload_endpoint(up, principal, account_id, item_id, body, base)
    if verb == "getDownloadEndpoint" and method == "GET":
        return await staged.download_endpoint(up, principal, account_id, item_id, base)
    # Fireworks validates a model upload with GET (query flags), a dataset's with POST.
    if verb == "validateUpload" and up is MODEL and method in ("GET", "POST"):
        return await staged.validate_model(principal, account_id, item_id, query)
    if verb == "validateUpload" and up is DATASET and method == "POST":
        return await staged.validate_dataset(principal, account_id, item_id)
    if verb == "prepare" and up is MODEL and method == "POST":
        raise ApiError(
            501,
            "models:prepare is not supported by Hearth: precision is chosen per deployment "
            "when the weights are loaded, not prepared per model",
        )
    if verb == "upload" and up is DATASET and method == "POST":
        return await staged.upload_dataset_file(
            principal, account_id, item_id, request.headers.get("content-type"), request.stream()
        )
    raise _unknown(request)


async def user_keys(plane: ControlPlane, principal: Principal, request: Request) -> Json:
    account_id, user_id = request.path_params["account"], request.path_params["user"]
    sub = request.path_params["sub"]
    if sub == "apiKeys" and request.method == "GET":
        return await plane.list_api_keys(principal, account_id, user_id, request.query_params)
    if sub == "apiKeys" and request.method == "POST":
        body = await read_json(request)
        return await plane.create_api_key(principal, account_id, user_id, body)
    if sub == "apiKeys:delete" and request.method == "POST":
        body = await read_json(request)
        return await plane.delete_api_key(principal, account_id, user_id, body)
    raise _unknown(request)


async def upload(request: Request) -> Response:
    """A signed upload URL: no API key, the signature authorises exactly this file."""
    try:
        plane = control_of(request)
        params = request.path_params
        query = request.query_params
        if params["collection"] not in UPLOADABLE:
            raise ApiError(404, f"no uploads into {params['collection']}")
        try:
            signed = Signed(
                account=params["account"],
                collection=params["collection"],
                item=params["item"],
                filename=params["filename"],
                size=int(query.get("size", "")),
                expires=int(query.get("expires", "")),
            )
        except ValueError:
            raise ApiError(403, "permission denied: not a signed upload URL") from None

        def chunks() -> AsyncIterator[bytes]:
            return request.stream()

        answer: Any = await plane.staged.receive_upload(signed, query.get("signature", ""), chunks)
        return JSONResponse(answer)
    except ApiError as error:
        return error_response(error.status, error.message)


async def download(request: Request) -> Response:
    """A signed download URL: no API key, the signature opens exactly this file."""
    try:
        plane = control_of(request)
        query = request.query_params
        try:
            expires = int(query.get("expires", ""))
        except ValueError:
            raise ApiError(403, "permission denied: not a signed download URL") from None
        wanted = Download(request.path_params["account"], request.path_params["path"], expires)
        path = await plane.staged.download(wanted, query.get("signature", ""))
        return FileResponse(path, filename=path.name, media_type="application/octet-stream")
    except ApiError as error:
        return error_response(error.status, error.message)


_ALL = ["GET", "POST", "PATCH", "DELETE"]

routes = [
    Route("/v1/accounts", endpoint(accounts), methods=["GET"]),
    Route("/v1/accounts/{account}", endpoint(account), methods=["GET"]),
    Route("/v1/accounts/{account}/users/{user}/{sub}", endpoint(user_keys), methods=_ALL),
    Route("/v1/accounts/{account}/usage", endpoint(account_usage), methods=["GET"]),
    Route("/v1/accounts/{account}/{collection}", endpoint(collection), methods=["GET", "POST"]),
    Route("/v1/accounts/{account}/{collection}/{item}", endpoint(item), methods=_ALL),
    Route(
        "/uploads/v1/accounts/{account}/{collection}/{item}/{filename}",
        upload,
        methods=["PUT", "POST"],
    ),
    Route("/downloads/v1/accounts/{account}/{path:path}", download, methods=["GET"]),
]
