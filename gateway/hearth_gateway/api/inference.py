"""The path every inference request takes, whatever its dialect.

Authenticate (401/403/412) -> read the body (400/413) -> resolve the model (404/412) ->
serverless rate limits (429) -> wait for a replica, scaling from zero (503) -> forward.
Errors the gateway makes are rendered in the caller's dialect; the server's own answers
pass through.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ..auth import AuthError, Principal, authorize, key_from_headers
from ..errors import Dialect, GatewayError, error_response
from ..gateway import Gateway
from ..limits import Admission, Quota, admit
from ..proxy import CLIENT_CLOSED, Exchange, until_disconnected
from ..ratelimit import RateLimiterUnavailable
from ..routing import Route, RoutingError, resolve
from ..scaling import hold_for_replicas
from ..usage import upstream_body

log = logging.getLogger(__name__)

NO_MODEL = "-"


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise GatewayError(413, f"the request body is larger than {limit} bytes")
    parts, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise GatewayError(413, f"the request body is larger than {limit} bytes")
        parts.append(chunk)
    return b"".join(parts)


def parse_request(raw: bytes) -> tuple[dict[str, Any], str]:
    """(the JSON body, its model); 400 naming the field when they are not usable."""
    try:
        body = json.loads(raw)
    except ValueError as error:
        raise GatewayError(400, f"the request body is not valid JSON: {error}") from None
    if not isinstance(body, dict):
        raise GatewayError(400, "the request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise GatewayError(400, "model: required, a model name such as accounts/<a>/models/<m>")
    return body, model


async def handle(gw: Gateway, request: Request, dialect: Dialect, upstream_path: str) -> Response:
    try:
        principal = authorize(key_from_headers(request.headers), gw.state)
    except AuthError as error:
        return error_response(error.status, error.message, dialect)
    try:
        raw = await read_body(request, gw.config.max_body_bytes)
        body, model = parse_request(raw)
        route = resolve(
            model, principal.account, gw.state, platform_account=gw.config.platform_account
        )
    except (GatewayError, RoutingError) as error:
        gw.count(principal.account, NO_MODEL, error.status)
        return error_response(error.status, error.message, dialect)
    content, keep_usage = upstream_body(body, route.served_name, dialect)
    ex = Exchange(
        request_id=uuid.uuid4().hex,
        principal=principal,
        dialect=dialect,
        client_model=model,
        upstream_path=upstream_path,
        body=content,
        stream=body.get("stream") is True,
        keep_usage_chunk=keep_usage,
    )
    answer = await until_disconnected(request.receive, _serve(gw, ex, route, body))
    if answer is None:
        if not ex.finished:  # it went away while held, before any server was asked
            gw.count(principal.account, route.deployed_model, CLIENT_CLOSED)
        return Response(status_code=CLIENT_CLOSED)
    return answer


async def _serve(gw: Gateway, ex: Exchange, route: Route, body: dict[str, Any]) -> Response:
    principal: Principal = ex.principal
    try:
        if route.serverless:
            quota = Quota.of_account(gw.state.account(principal.account))
            try:
                admission = await admit(gw.limiter, principal.account, quota)
            except RateLimiterUnavailable as error:
                # Fail open: a Redis outage must not stop inference (it is logged).
                log.warning("rate limits not checked for %s: %s", principal.account, error)
                admission = Admission(True)
            ex.headers.update(admission.headers)
            if not admission.allowed:
                raise GatewayError(429, admission.message, admission.headers)

        def again() -> Route:
            return resolve(
                ex.client_model,
                principal.account,
                gw.state,
                platform_account=gw.config.platform_account,
            )

        served = route.served_name
        route = await hold_for_replicas(
            route,
            again,
            gw.cache,
            gw.metrics,
            timeout_s=gw.config.scale_from_zero_timeout,
            retry_after_s=gw.config.retry_after_seconds,
        )
        if route.served_name != served:  # it resolved elsewhere while held
            ex.body, _ = upstream_body(body, route.served_name, ex.dialect)
        return await gw.proxy.forward(ex, route, gw.finish)
    except (GatewayError, RoutingError) as error:
        if not getattr(error, "recorded", False):
            gw.count(principal.account, route.deployed_model, error.status)
        headers = {**ex.headers, **getattr(error, "headers", {})}
        return error_response(error.status, error.message, ex.dialect, headers)
