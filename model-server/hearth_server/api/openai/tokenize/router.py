"""POST /tokenize and POST /detokenize."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from hearth_server.api.errors import ErrorResponse, openai_json
from hearth_server.api.openai.tokenize import serving
from hearth_server.api.openai.tokenize.protocol import DetokenizeRequest, TokenizeRequest

router = APIRouter()


@router.post("/tokenize", responses={400: {"model": ErrorResponse}})
async def tokenize(body: TokenizeRequest, raw: Request) -> Response:
    result = await serving.tokenize(raw.app.state.hearth, body)
    return openai_json(result) if isinstance(result, ErrorResponse) else JSONResponse(result)


@router.post("/detokenize", responses={400: {"model": ErrorResponse}})
async def detokenize(body: DetokenizeRequest, raw: Request) -> Response:
    result = serving.detokenize(raw.app.state.hearth, body)
    return openai_json(result) if isinstance(result, ErrorResponse) else JSONResponse(result)
