"""GET /health: 200 when the engine runs; 503 saying why otherwise.

The reasons: "model is loading", "loading startup adapters", "startup failed: ..." and
"engine failed: ..." (the last one is final: the server exits soon after, see
``--engine-failure-exit-delay``)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from hearth_server.api.state import ServerState

router = APIRouter()


@router.get("/health")
async def health(request: Request) -> Response:
    state: ServerState = request.app.state.hearth
    if state.ready:
        return Response(status_code=200)
    reason = state.not_ready_reason
    return JSONResponse({"error": {"message": reason, "code": 503}}, status_code=503)
