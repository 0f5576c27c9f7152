"""``build_app(settings)``: the FastAPI application used by uvicorn and by tests."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from hearth_server.api import health, metrics
from hearth_server.api.anthropic.messages import router as anthropic_messages
from hearth_server.api.errors import ErrorResponse, anthropic_json, error, openai_json
from hearth_server.api.metrics import Metrics
from hearth_server.api.openai.chat import router as chat
from hearth_server.api.openai.completions import router as completions
from hearth_server.api.openai.models import router as models
from hearth_server.api.openai.tokenize import router as tokenize
from hearth_server.api.state import ServerState
from hearth_server.config import ServerSettings
from hearth_server.engine.engine import Engine

log = logging.getLogger("hearth_server")


class NotReady(Exception):
    pass


async def require_ready(request: Request) -> None:
    if not request.app.state.hearth.ready:
        raise NotReady()


def build_app(settings: ServerSettings, engine: Engine | None = None) -> FastAPI:
    """Build the app. With ``engine`` given (tests) it is used as is; otherwise the model
    named by ``settings.model`` is loaded in the background after startup, and /health
    answers 503 until it is ready."""
    state = ServerState(settings=settings, metrics=Metrics(settings.model_name))
    if engine is not None:
        _attach_engine(state, engine)
        state.started = True

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = None
        if state.engine is None:
            task = asyncio.create_task(_load_in_background(state))
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
            if state.engine is not None and engine is None:
                state.engine.shutdown()

    app = FastAPI(title="hearth-server", lifespan=lifespan)
    app.state.hearth = state
    ready = [Depends(require_ready)]
    for module in (chat, completions, models, tokenize, anthropic_messages):
        app.include_router(module.router, dependencies=ready)
    app.include_router(health.router)
    app.include_router(metrics.router)
    _install_error_handlers(app)
    return app


def _attach_engine(state: ServerState, engine: Engine) -> None:
    engine.stats = state.metrics
    state.metrics.add_engine_gauges(
        lambda: {
            "num_requests_running": float(len(engine.running)),
            "num_requests_waiting": float(engine.num_waiting),
            "kv_cache_usage_perc": engine.kv_usage,
            "lora_adapters_loaded": float(len(engine.adapters.registry)),
            "lora_adapters_active": float(len(engine.slots.active)),
            "engine_alive": float(engine.alive),
        },
        lambda: [a.name for a in engine.adapters.all()],
    )
    if not engine.alive and engine.error is None:
        engine.start()
    state.engine = engine


async def _load_in_background(state: ServerState) -> None:
    from hearth_server.server import load_engine

    try:
        engine, root = await asyncio.to_thread(load_engine, state.settings)
    except Exception as exc:
        log.exception("startup failed")
        state.startup_error = f"startup failed: {exc}"
        return
    state.model_root = root
    _attach_engine(state, engine)
    await _load_startup_loras(state)
    state.started = True  # only now does /health say 200


async def _load_startup_loras(state: ServerState) -> None:
    from hearth_server.api.openai.models.protocol import LoadLoRAAdapterRequest
    from hearth_server.api.openai.models.serving import load_lora_adapter

    for name, uri in state.settings.loras:
        start = time.monotonic()
        result = await load_lora_adapter(
            state, LoadLoRAAdapterRequest(lora_name=name, lora_path=uri)
        )
        if isinstance(result, ErrorResponse):
            log.error("--lora %s=%s failed: %s", name, uri, result.error.message)
        else:
            log.info("adapter %s loaded from %s in %.2fs", name, uri, time.monotonic() - start)


def _is_anthropic(request: Request) -> bool:
    return request.url.path.startswith(anthropic_messages.PREFIX)


def _render(request: Request, err: ErrorResponse) -> JSONResponse:
    return anthropic_json(err) if _is_anthropic(request) else openai_json(err)


def _param(loc: tuple[Any, ...]) -> str | None:
    parts = [str(p) for p in loc if p != "body"]
    return ".".join(parts) or None


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {}
        param = _param(tuple(first.get("loc", ())))
        if first.get("type") == "json_invalid":
            message, param = (
                f"request body is not valid JSON: {first.get('ctx', {}).get('error', '')}",
                None,
            )
        elif first.get("type") == "missing" and param is None:
            message = "request body is required"
        else:
            message = f"{param or 'body'}: {first.get('msg', 'invalid value')}"
        if len(errors) > 1:
            message += f" (and {len(errors) - 1} more problems)"
        return _render(request, error(400, message, param))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _render(request, error(exc.status_code, str(exc.detail)))

    @app.exception_handler(NotReady)
    async def not_ready(request: Request, exc: NotReady) -> JSONResponse:
        state = request.app.state.hearth
        reason = state.startup_error or "the model is still loading"
        return _render(request, error(503, reason))

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s", request.url.path)
        return _render(request, error(500, f"internal error ({type(exc).__name__})"))
