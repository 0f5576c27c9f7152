"""POST /v1/messages; errors are rendered in Anthropic's envelope."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from hearth_server.api.anthropic.messages.protocol import MessagesRequest
from hearth_server.api.anthropic.messages.serving import create_message
from hearth_server.api.errors import ANTHROPIC_PREFIX, ErrorResponse, anthropic_json

router = APIRouter()

PREFIX = ANTHROPIC_PREFIX


@router.post(PREFIX)
async def messages(body: MessagesRequest, raw: Request) -> Response:
    result = await create_message(raw.app.state.hearth, body, raw)
    if isinstance(result, ErrorResponse):
        return anthropic_json(result)
    if isinstance(result, dict):
        return JSONResponse(result)
    return StreamingResponse(result, media_type="text/event-stream")
