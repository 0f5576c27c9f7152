"""Where the routes find the running gateway (set by the app's lifespan)."""

from __future__ import annotations

from starlette.requests import Request

from ..gateway import Gateway


def gateway_of(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway
