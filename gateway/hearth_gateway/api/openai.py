"""OpenAI-compatible routes: chat completions, completions and embeddings."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..errors import Dialect
from .inference import handle
from .state import gateway_of


async def chat_completions(request: Request) -> Response:
    return await handle(gateway_of(request), request, Dialect.OPENAI, "/v1/chat/completions")


async def completions(request: Request) -> Response:
    return await handle(gateway_of(request), request, Dialect.OPENAI, "/v1/completions")


async def embeddings(request: Request) -> Response:
    return await handle(gateway_of(request), request, Dialect.OPENAI, "/v1/embeddings")


routes = [
    Route("/v1/chat/completions", chat_completions, methods=["POST"]),
    Route("/v1/completions", completions, methods=["POST"]),
    Route("/v1/embeddings", embeddings, methods=["POST"]),
]
