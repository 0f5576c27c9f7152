"""POST /v1/embeddings (thin: the serving module does the work)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from hearth_server.api.errors import ErrorResponse, openai_json
from hearth_server.api.openai.embeddings.protocol import EmbeddingRequest
from hearth_server.api.openai.embeddings.serving import create_embeddings

router = APIRouter()
_ERRORS: dict[int | str, dict[str, Any]] = {
    c: {"model": ErrorResponse} for c in (400, 404, 500, 503)
}


@router.post("/v1/embeddings", responses=_ERRORS)
async def embeddings(body: EmbeddingRequest, raw: Request) -> Response:
    result = await create_embeddings(raw.app.state.hearth, body)
    if isinstance(result, ErrorResponse):
        return openai_json(result)
    return JSONResponse(result)
