"""Control-plane errors in Fireworks' (gRPC-gateway) shape.

Fireworks' REST API is gRPC transcoded to JSON, so an error body is
``{"code": <google.rpc.Code number>, "message": "...", "details": []}`` with the standard
HTTP status for the code. Messages name the field or rule at fault.
"""

from __future__ import annotations

import json

from starlette.responses import Response

#: HTTP status -> (google.rpc.Code number, name).
_CODES: dict[int, tuple[int, str]] = {
    400: (3, "INVALID_ARGUMENT"),
    401: (16, "UNAUTHENTICATED"),
    403: (7, "PERMISSION_DENIED"),
    404: (5, "NOT_FOUND"),
    405: (12, "UNIMPLEMENTED"),
    409: (6, "ALREADY_EXISTS"),
    412: (9, "FAILED_PRECONDITION"),
    413: (11, "OUT_OF_RANGE"),
    429: (8, "RESOURCE_EXHAUSTED"),
    501: (12, "UNIMPLEMENTED"),
    502: (14, "UNAVAILABLE"),
    503: (14, "UNAVAILABLE"),
    504: (4, "DEADLINE_EXCEEDED"),
}


class ApiError(Exception):
    """An error the control plane answers with (status, message)."""

    def __init__(self, status: int, message: str, *, aborted: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        #: A 409 for a concurrent change (ABORTED) rather than an existing ID.
        self.aborted = aborted


def invalid(message: str) -> ApiError:
    return ApiError(400, message)


def error_body(status: int, message: str, *, aborted: bool = False) -> dict[str, object]:
    code, name = (10, "ABORTED") if aborted else _CODES.get(status, (13, "INTERNAL"))
    return {"code": code, "status": name, "message": message, "details": []}


def error_response(status: int, message: str, *, aborted: bool = False) -> Response:
    return Response(
        json.dumps(error_body(status, message, aborted=aborted)),
        status_code=status,
        media_type="application/json",
    )
