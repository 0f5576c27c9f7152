"""The Anthropic-compatible Messages route (errors in Anthropic's envelope)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..errors import Dialect
from .inference import handle
from .state import gateway_of


async def messages(request: Request) -> Response:
    return await handle(gateway_of(request), request, Dialect.ANTHROPIC, "/v1/messages")


routes = [Route("/v1/messages", messages, methods=["POST"])]
