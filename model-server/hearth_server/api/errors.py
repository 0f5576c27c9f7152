"""One internal error type, rendered per dialect at the edge."""

from __future__ import annotations

from http import HTTPStatus

from fastapi.responses import JSONResponse
from pydantic import BaseModel


class ErrorInfo(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: int


class ErrorResponse(BaseModel):
    error: ErrorInfo

    @property
    def status(self) -> int:
        return self.error.code


_OPENAI_TYPES = {
    400: "invalid_request_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "internal_server_error",
    503: "service_unavailable",
}

_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "overloaded_error",
}


def error(status: int, message: str, param: str | None = None) -> ErrorResponse:
    kind = _OPENAI_TYPES.get(status, HTTPStatus(status).phrase.lower().replace(" ", "_"))
    return ErrorResponse(error=ErrorInfo(message=message, type=kind, param=param, code=status))


def bad_request(message: str, param: str | None = None) -> ErrorResponse:
    return error(400, message, param)


def openai_json(err: ErrorResponse) -> JSONResponse:
    return JSONResponse(err.model_dump(), status_code=err.status)


def anthropic_json(err: ErrorResponse) -> JSONResponse:
    kind = _ANTHROPIC_TYPES.get(err.status, "api_error")
    message = err.error.message
    if err.error.param and err.error.param not in message:
        message = f"{err.error.param}: {message}"
    body = {"type": "error", "error": {"type": kind, "message": message}}
    return JSONResponse(body, status_code=err.status)
