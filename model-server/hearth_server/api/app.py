"""``build_app(settings)``: the FastAPI application used by uvicorn and by tests."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from hearth_server.api import health, metrics
from hearth_server.api.anthropic.messages import router as anthropic_messages
from hearth_server.api.errors import ErrorResponse, error, render
from hearth_server.api.guards import RequestGuard
from hearth_server.api.metrics import Metrics
from hearth_server.api.openai.chat import router as chat
from hearth_server.api.openai.completions import router as completions
from hearth_server.api.openai.embeddings import router as embeddings
from hearth_server.api.openai.models import router as models
from hearth_server.api.openai.tokenize import router as tokenize
from hearth_server.api.state import ServerState
from hearth_server.config import ServerSettings
from hearth_server.engine.handle import EngineHandle

log = logging.getLogger("hearth_server")

# How often the lifespan task looks at the engine thread.
_WATCH_INTERVAL_S = 0.2


class NotReady(Exception):
    pass


async def require_ready(request: Request) -> None:
    if not request.app.state.hearth.ready:
        raise NotReady()


def build_app(
    settings: ServerSettings,
    engine: EngineHandle | None = None,
    on_fatal: Callable[[], None] | None = None,
) -> FastAPI:
    """Build the app. With ``engine`` given (tests) it is used as is; otherwise the model
    named by ``settings.model`` is loaded in the background after startup, and /health
    answers 503 until it is ready.

    If the engine dies and ``settings.engine_failure_exit_delay`` is set, ``on_fatal``
    is called that many seconds later (the CLI stops uvicorn and exits 1)."""
    state = ServerState(settings=settings, metrics=Metrics(settings.model_name))
    if engine is not None:
        _attach_engine(state, engine)
        state.started = True

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        tasks = []
        if state.engine is None:
            tasks.append(asyncio.create_task(_load_in_background(state)))
        delay = settings.engine_failure_exit_delay
        if delay is not None and on_fatal is not None:
            tasks.append(asyncio.create_task(_exit_on_engine_failure(state, delay, on_fatal)))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            if state.engine is not None and engine is None:
                state.engine.shutdown()
            state.tokenizer_pool.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="hearth-server", lifespan=lifespan)
    app.state.hearth = state
    ready = [Depends(require_ready)]
    for module in (chat, completions, embeddings, models, tokenize, anthropic_messages):
        app.include_router(module.router, dependencies=ready)
    app.include_router(health.router)
    app.include_router(metrics.router)
    _install_error_handlers(app)
    app.add_middleware(
        RequestGuard, api_key=settings.api_key, max_request_bytes=settings.max_request_bytes
    )
    return app


def _attach_engine(state: ServerState, engine: EngineHandle) -> None:
    engine.stats = state.metrics
    state.metrics.add_engine_gauges(engine.gauges, lambda: [a.name for a in engine.adapter_list()])
    state.metrics.add_prefix_cache(engine.prefix_readings)
    if not engine.alive and engine.error is None:
        engine.start()
    state.engine = engine


async def _load_in_background(state: ServerState) -> None:
    from hearth_server.engine_process.client import start_engine_process
    from hearth_server.server import load_engine

    start: Callable[[ServerSettings], tuple[EngineHandle, str]] = (
        start_engine_process if state.settings.engine_process else load_engine
    )
    try:
        engine, root = await asyncio.to_thread(start, state.settings)
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
        request = LoadLoRAAdapterRequest(lora_name=name, lora_path=uri)
        # --lora paths come from whoever started the server: not confined to the roots.
        result = await load_lora_adapter(state, request, confined=False)
        if isinstance(result, ErrorResponse):
            log.error("--lora %s=%s failed: %s", name, uri, result.error.message)
        else:
            log.info("adapter %s loaded from %s in %.2fs", name, uri, time.monotonic() - start)


async def _exit_on_engine_failure(
    state: ServerState, delay: float, on_fatal: Callable[[], None]
) -> None:
    """Once the engine thread has died (its requests have already been failed), give
    responses ``delay`` seconds to reach their clients, then stop the process with exit
    code 1 so that Kubernetes (restartPolicy, liveness probe) starts a fresh one."""
    while True:
        await asyncio.sleep(_WATCH_INTERVAL_S)
        engine = state.engine
        if engine is not None and engine.error is not None:
            break
    state.exit_code = 1
    log.error("%s; exiting in %.1fs so that the server is restarted", state.engine_failure, delay)
    await asyncio.sleep(delay)
    on_fatal()


def _param(loc: tuple[Any, ...]) -> str | None:
    parts = [str(p) for p in loc if p != "body"]
    return ".".join(parts) or None


def _common_loc(errors: list[Any]) -> tuple[Any, ...]:
    """The longest location every error shares (the field, when the errors are the
    members of one union type failing on the same value)."""
    locs = [tuple(e.get("loc", ())) for e in errors]
    common: list[Any] = []
    for parts in zip(*locs, strict=False):
        if any(p != parts[0] for p in parts):
            break
        common.append(parts[0])
    return tuple(common)


def validation_message(errors: list[Any]) -> tuple[str, str | None]:
    """One message naming the field and the rule for a RequestValidationError."""
    first = errors[0] if errors else {}
    param = _param(tuple(first.get("loc", ())))
    if first.get("type") == "json_invalid":
        return f"request body is not valid JSON: {first.get('ctx', {}).get('error', '')}", None
    if first.get("type") == "missing" and param is None:
        return "request body is required", None
    shared = _param(_common_loc(errors))
    if len(errors) > 1 and shared is not None:
        # One field, several accepted shapes: name the field, list what each expects.
        rules = list(dict.fromkeys(str(e.get("msg", "invalid value")) for e in errors))
        return f"{shared}: {'; or '.join(rules)}", shared
    message = f"{param or 'body'}: {first.get('msg', 'invalid value')}"
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more problems)"
    return message, param


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        message, param = validation_message(list(exc.errors()))
        return render(request.url.path, error(400, message, param))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return render(request.url.path, error(exc.status_code, str(exc.detail)))

    @app.exception_handler(NotReady)
    async def not_ready(request: Request, exc: NotReady) -> JSONResponse:
        state: ServerState = request.app.state.hearth
        return render(request.url.path, error(503, state.not_ready_reason))

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s", request.url.path)
        return render(request.url.path, error(500, f"internal error ({type(exc).__name__})"))
