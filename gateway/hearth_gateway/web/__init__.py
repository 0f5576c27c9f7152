"""The web app: a static bundle (``static/``, package data) served at ``/``.

The app is plain ES modules with no build step; it talks only to the gateway's REST and
inference APIs with the API key the user signs in with. This module serves the files, the
role table the app uses to disable what a role may not do (from :mod:`hearth.roles`, so the
browser and the gateway agree), and the security headers that keep the page to its own
origin.
"""

from __future__ import annotations

from pathlib import Path

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send

from hearth.api.user import Role
from hearth.roles import permissions

STATIC = Path(__file__).parent / "static"
#: Where the app's files are served (the page itself is ``/``).
ASSETS_PATH = "/ui"

#: Everything from this origin, nothing inline, no frames: the API key lives in the page's
#: session storage, so the page runs no code it did not get from the gateway.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    # Revalidate every time (ETag / Last-Modified make that a 304): an upgraded gateway
    # serves its own app at once.
    "cache-control": "no-cache",
}


def role_table() -> dict[str, list[str]]:
    """Each role's permissions, as :func:`hearth.roles.allows` decides them."""
    return {role.value: sorted(p.value for p in permissions(role)) for role in Role}


async def index(request: Request) -> Response:
    return FileResponse(STATIC / "index.html", headers=SECURITY_HEADERS)


async def roles(request: Request) -> Response:
    return JSONResponse(role_table(), headers={"cache-control": "no-cache"})


class Assets(StaticFiles):
    """Static files with the security headers (and the right type for ES modules)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).update(SECURITY_HEADERS)
            await send(message)

        await super().__call__(scope, receive, with_headers)


routes: list[BaseRoute] = [
    Route("/", index, methods=["GET", "HEAD"]),
    Route(f"{ASSETS_PATH}/roles.json", roles, methods=["GET"]),
    Mount(ASSETS_PATH, app=Assets(directory=STATIC), name="webapp"),
]
