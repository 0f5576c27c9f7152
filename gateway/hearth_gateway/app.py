"""The ASGI app: inference routes under ``/`` and ``/inference``, health and metrics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from .api import anthropic, models, openai
from .api.state import gateway_of
from .cluster import ClusterCache, KubeClient, load_configuration
from .config import GatewayConfig
from .control import open_control
from .control import routes as control_routes
from .errors import Dialect, error_response
from .gateway import Gateway
from .ledger import open_ledger
from .ratelimit import open_rate_limiter
from .web import routes as web_routes

log = logging.getLogger(__name__)

API_ROUTES = [*openai.routes, *anthropic.routes, *models.routes]


def redact(url: str | None) -> str:
    """A URL without its password, for logs."""
    if not url:
        return "(none)"
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


async def open_gateway(config: GatewayConfig) -> Gateway:
    """Connect to the cluster (and wait for the caches), the ledger and the limiter."""
    configuration, where = load_configuration(config.kubeconfig, in_cluster=config.in_cluster)
    log.info("Kubernetes API %s (from %s)", where.host, where.source)
    cache = ClusterCache(KubeClient(configuration))
    await cache.start(sync_timeout=config.cache_sync_timeout)
    log.info("cache synced: %s", ", ".join(f"{k}={v}" for k, v in cache.sizes().items()))
    try:
        ledger = await asyncio.to_thread(open_ledger, config.ledger_url)
        limiter = open_rate_limiter(config.redis_url)
    except BaseException:
        await cache.stop()
        raise
    log.info(
        "platform account %s; ledger %s; rate limits %s; scale-from-zero timeout %g s",
        config.platform_account,
        redact(config.ledger_url) if config.ledger_url else "SQLite (HEARTH_GATEWAY_LEDGER_PATH)",
        f"in Redis {redact(config.redis_url)}" if config.redis_url else "in memory",
        config.scale_from_zero_timeout,
    )
    return Gateway(config, cache, ledger, limiter)


async def close_gateway(gateway: Gateway) -> None:
    await gateway.close()
    await gateway.ledger.close()
    close = getattr(gateway.limiter, "close", None)
    if close is not None:
        await close()
    await gateway.cache.stop()


async def health(request: Request) -> Response:
    gw = gateway_of(request)
    return JSONResponse(
        {"status": "ok", "apiConnected": gw.cache.connected, "cached": gw.cache.sizes()}
    )


async def metrics(request: Request) -> Response:
    return Response(
        generate_latest(gateway_of(request).metrics.registry), media_type=CONTENT_TYPE_LATEST
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    dialect = Dialect.ANTHROPIC if request.url.path.endswith("/v1/messages") else Dialect.OPENAI
    message = "not found" if exc.status_code == 404 else str(exc.detail)
    if exc.status_code == 405:
        message = f"method {request.method} is not allowed on {request.url.path}"
    return error_response(exc.status_code, message, dialect, exc.headers)


def create_app(config: GatewayConfig, gateway: Gateway | None = None) -> Starlette:
    """The app; it opens (and at shutdown closes) its gateway unless one is given."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        if gateway is not None:
            app.state.gateway = gateway
            yield {}
            return
        opened = await open_gateway(config)
        app.state.gateway = opened
        app.state.control = open_control(config, opened)
        try:
            yield {}
        finally:
            await app.state.control.kube.close()
            await close_gateway(opened)

    return Starlette(
        routes=[
            Route("/health", health, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            *API_ROUTES,
            *control_routes,
            Mount("/inference", routes=list(API_ROUTES)),
            *web_routes,
        ],
        exception_handlers={HTTPException: _http_error},
        lifespan=lifespan,
    )
