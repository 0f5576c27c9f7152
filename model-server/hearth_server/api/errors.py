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
    401: "authentication_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "internal_server_error",
    503: "service_unavailable",
}

_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "overloaded_error",
}


def printable(text: str) -> str:
    """``text`` with lone surrogates escaped, so that it can always be encoded as UTF-8
    (a JSON body may carry "\\ud800"; echoing it back must not fail the response)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def error(status: int, message: str, param: str | None = None) -> ErrorResponse:
    kind = _OPENAI_TYPES.get(status, HTTPStatus(status).phrase.lower().replace(" ", "_"))
    info = ErrorInfo(
        message=printable(message),
        type=kind,
        param=None if param is None else printable(param),
        code=status,
    )
    return ErrorResponse(error=info)


def bad_request(message: str, param: str | None = None) -> ErrorResponse:
    return error(400, message, param)


def openai_json(err: ErrorResponse) -> JSONResponse:
    return JSONResponse(err.model_dump(), status_code=err.status)


def anthropic_body(err: ErrorResponse) -> dict[str, object]:
    kind = _ANTHROPIC_TYPES.get(err.status, "api_error")
    message = err.error.message
    if err.error.param and err.error.param not in message:
        message = f"{err.error.param}: {message}"
    return {"type": "error", "error": {"type": kind, "message": message}}


def anthropic_json(err: ErrorResponse) -> JSONResponse:
    return JSONResponse(anthropic_body(err), status_code=err.status)


# Routes under this prefix (the Messages API) answer in Anthropic's error envelope.
ANTHROPIC_PREFIX = "/v1/messages"


def is_anthropic_path(path: str) -> bool:
    return path.startswith(ANTHROPIC_PREFIX)


def render(path: str, err: ErrorResponse) -> JSONResponse:
    """``err`` in the envelope of the dialect that serves ``path``."""
    return anthropic_json(err) if is_anthropic_path(path) else openai_json(err)
