"""GET /v1/models, POST /v1/load_lora_adapter, POST /v1/unload_lora_adapter."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from hearth_server.api.errors import ErrorResponse, openai_json
from hearth_server.api.openai.models import serving
from hearth_server.api.openai.models.protocol import (
    LoadLoRAAdapterRequest,
    UnloadLoRAAdapterRequest,
)

router = APIRouter()
_ERRORS: dict[int | str, dict[str, Any]] = {c: {"model": ErrorResponse} for c in (400, 404)}


@router.get("/v1/models")
async def models(raw: Request) -> Response:
    return JSONResponse(serving.list_models(raw.app.state.hearth))


@router.post("/v1/load_lora_adapter", responses=_ERRORS)
async def load_lora_adapter(body: LoadLoRAAdapterRequest, raw: Request) -> Response:
    result = await serving.load_lora_adapter(raw.app.state.hearth, body)
    if isinstance(result, ErrorResponse):
        return openai_json(result)
    return JSONResponse(result)


@router.post("/v1/unload_lora_adapter", responses=_ERRORS)
async def unload_lora_adapter(body: UnloadLoRAAdapterRequest, raw: Request) -> Response:
    return JSONResponse(await serving.unload_lora_adapter(raw.app.state.hearth, body))
