"""POST /v1/chat/completions (thin: the serving module does the work)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from hearth_server.api.errors import ErrorResponse, openai_json
from hearth_server.api.openai.chat.protocol import ChatCompletionRequest
from hearth_server.api.openai.chat.serving import create_chat_completion

router = APIRouter()
_ERRORS: dict[int | str, dict[str, Any]] = {
    c: {"model": ErrorResponse} for c in (400, 404, 500, 503)
}


@router.post("/v1/chat/completions", responses=_ERRORS)
async def chat_completions(body: ChatCompletionRequest, raw: Request) -> Response:
    result = await create_chat_completion(raw.app.state.hearth, body, raw)
    if isinstance(result, ErrorResponse):
        return openai_json(result)
    if isinstance(result, dict):
        return JSONResponse(result)
    return StreamingResponse(result, media_type="text/event-stream")
