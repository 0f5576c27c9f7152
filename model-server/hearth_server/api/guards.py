"""ASGI middleware in front of every route: the API token and the request body limit.

It runs before routing, so no route (present or future, including FastAPI's docs and
unknown paths) can be reached without the token; /health and /metrics stay open for
the kubelet's probes and Prometheus.
"""

from __future__ import annotations

import hashlib
import hmac

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hearth_server.api.errors import ErrorResponse, error, render

OPEN_PATHS = frozenset({"/health", "/metrics"})


def _digest(value: bytes) -> bytes:
    # Comparing fixed-size digests keeps the comparison constant-time in the key's
    # length too, not only in its contents.
    return hashlib.sha256(value).digest()


def presented_keys(headers: list[tuple[bytes, bytes]]) -> list[bytes]:
    """Tokens sent as ``Authorization: Bearer <key>`` (OpenAI SDKs) or ``x-api-key``
    (Anthropic SDKs)."""
    found = []
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.partition(b" ")
            if scheme.lower() == b"bearer" and token.strip():
                found.append(token.strip())
        elif name == b"x-api-key" and value:
            found.append(value.strip())
    return found


class RequestGuard:
    def __init__(self, app: ASGIApp, api_key: str | None, max_request_bytes: int) -> None:
        self.app = app
        self.key_digest = _digest(api_key.encode()) if api_key else None
        self.max_bytes = max_request_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        problem = self._auth_problem(scope)
        if problem is None:
            problem = _declared_size_problem(scope, self.max_bytes)
        if problem is not None:
            await render(scope["path"], problem)(scope, receive, send)
            return
        body: list[Message] = []
        size = 0
        while True:  # buffer the body (FastAPI reads it whole anyway), up to the limit
            message = await receive()
            body.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                await render(scope["path"], too_large(self.max_bytes))(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(body, receive), send)

    def _auth_problem(self, scope: Scope) -> ErrorResponse | None:
        if self.key_digest is None or scope["path"] in OPEN_PATHS:
            return None
        keys = presented_keys(scope["headers"])
        if not keys:
            return error(
                401,
                "missing API key: send it as 'Authorization: Bearer <key>' or 'x-api-key: <key>'",
            )
        # Check every presented key (no early exit) so timing reveals nothing.
        matches = [hmac.compare_digest(_digest(k), self.key_digest) for k in keys]
        return None if any(matches) else error(401, "invalid API key")


def too_large(limit: int) -> ErrorResponse:
    return error(
        413,
        f"request body is larger than this server's limit of {limit} bytes (--max-request-bytes)",
    )


def _declared_size_problem(scope: Scope, limit: int) -> ErrorResponse | None:
    """A Content-Length over the limit is refused before a byte of the body is read."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                declared = int(value)
            except ValueError:
                return error(400, "Content-Length is not an integer")
            return too_large(limit) if declared > limit else None
    return None


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """A ``receive`` that returns the buffered messages, then the real ones (so the app
    still hears about a client disconnect)."""
    pending = list(messages)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed
