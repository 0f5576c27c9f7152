"""``GET /v1/models``: the models the caller's key can reach, in OpenAI's list shape."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..auth import AuthError, authorize, key_from_headers
from ..errors import Dialect, error_response
from ..routing import reachable_models
from .state import gateway_of


async def list_models(request: Request) -> Response:
    gw = gateway_of(request)
    try:
        principal = authorize(key_from_headers(request.headers), gw.state)
    except AuthError as error:
        return error_response(error.status, error.message, Dialect.OPENAI)
    listings = reachable_models(
        principal.account, gw.state, platform_account=gw.config.platform_account
    )
    return JSONResponse(
        {
            "object": "list",
            "data": [
                {
                    "id": listing.id,
                    "object": "model",
                    "created": 0,
                    "owned_by": listing.owned_by,
                    "serverless": listing.serverless,
                }
                for listing in listings
            ],
        }
    )


routes = [Route("/v1/models", list_models, methods=["GET"])]
