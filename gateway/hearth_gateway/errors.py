"""Errors the gateway itself returns, rendered in the caller's dialect at the edge.

OpenAI routes get Fireworks' OpenAI-style object
``{"error": {"object": "error", "type", "code", "message"}}``; ``/v1/messages`` gets the
Anthropic envelope ``{"type": "error", "error": {"type", "message"}}``. Errors a model
server returns are passed through as they are (it speaks both dialects itself).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from starlette.responses import Response

from .dialect import Dialect

__all__ = ["Dialect", "GatewayError", "error_body", "error_response"]


class GatewayError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        headers: Mapping[str, str] | None = None,
        *,
        recorded: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})
        #: The request's usage and metrics were already written.
        self.recorded = recorded


#: status -> (OpenAI type, Fireworks/gRPC-style code, Anthropic type)
_KINDS: dict[int, tuple[str, str, str]] = {
    400: ("invalid_request_error", "INVALID_ARGUMENT", "invalid_request_error"),
    401: ("authentication_error", "UNAUTHENTICATED", "authentication_error"),
    403: ("permission_error", "PERMISSION_DENIED", "permission_error"),
    404: ("not_found_error", "NOT_FOUND", "not_found_error"),
    405: ("invalid_request_error", "METHOD_NOT_ALLOWED", "invalid_request_error"),
    412: ("failed_precondition", "FAILED_PRECONDITION", "invalid_request_error"),
    413: ("invalid_request_error", "REQUEST_TOO_LARGE", "request_too_large"),
    429: ("rate_limit_error", "RESOURCE_EXHAUSTED", "rate_limit_error"),
    499: ("cancelled", "CANCELLED", "api_error"),
    502: ("bad_gateway", "UNAVAILABLE", "api_error"),
    503: ("service_unavailable", "UNAVAILABLE", "overloaded_error"),
    504: ("timeout", "DEADLINE_EXCEEDED", "api_error"),
}


def error_body(status: int, message: str, dialect: Dialect) -> dict[str, object]:
    openai_type, code, anthropic_type = _KINDS.get(
        status, ("internal_error", "INTERNAL", "api_error")
    )
    if dialect is Dialect.ANTHROPIC:
        return {"type": "error", "error": {"type": anthropic_type, "message": message}}
    return {"error": {"object": "error", "type": openai_type, "code": code, "message": message}}


def error_response(
    status: int,
    message: str,
    dialect: Dialect,
    headers: Mapping[str, str] | None = None,
) -> Response:
    return Response(
        json.dumps(error_body(status, message, dialect)),
        status_code=status,
        media_type="application/json",
        headers=dict(headers or {}),
    )
