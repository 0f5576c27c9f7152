"""GET /health: 200 when the engine runs, 503 while loading or after it died."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

router = APIRouter()


@router.get("/health")
async def health(request: Request) -> Response:
    state = request.app.state.hearth
    if state.ready:
        return Response(status_code=200)
    if state.startup_error:
        reason = state.startup_error
    elif state.engine is None:
        reason = "model is loading"
    elif not state.started:
        reason = "loading startup adapters"
    else:
        reason = "engine died"
    return JSONResponse({"error": {"message": reason, "code": 503}}, status_code=503)
