"""One connection to a Hearth gateway's control plane: requests, errors, pagination."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final

import httpx

#: A JSON object as the API sends and receives it (camelCase keys, Fireworks' shapes).
Json = dict[str, Any]

USER_AGENT: Final = "hearthctl"
DEFAULT_TIMEOUT_S: Final = 30.0


class ApiError(Exception):
    """The server answered with an HTTP error; ``message`` is the server's own text."""

    def __init__(
        self, status_code: int, message: str, *, code: str | None = None, request: str = ""
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.code = code
        self.request = request

    def __str__(self) -> str:
        code = f" {self.code}" if self.code else ""
        return f"{self.message} (HTTP {self.status_code}{code})"


class ConnectionFailed(Exception):
    """The gateway could not be reached (refused, DNS, TLS, timeout)."""


@dataclass(frozen=True)
class ListQuery:
    """Fireworks list parameters; ``limit`` (client side) stops after that many items."""

    filter: str | None = None
    order_by: str | None = None
    page_size: int | None = None
    page_token: str | None = None
    read_mask: str | None = None
    limit: int | None = None
    extra: Mapping[str, str] = field(default_factory=dict)

    def params(self) -> dict[str, str]:
        """The query parameters of the first page (``pageToken`` is set per page)."""
        params = dict(self.extra)
        for key, value in (
            ("filter", self.filter),
            ("orderBy", self.order_by),
            ("pageSize", self.page_size),
            ("readMask", self.read_mask),
        ):
            if value is not None:
                params[key] = str(value)
        return params


def error_details(response: httpx.Response) -> tuple[str | None, str]:
    """(code, message) from an error body in any of the shapes servers use.

    Fireworks' control plane answers ``{"code", "message"}`` (gRPC-gateway style), the
    inference side ``{"error": {"code", "message"}}``, FastAPI ``{"detail": ...}``.
    """
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        inner = body.get("error")
        if isinstance(inner, dict):
            body = inner
        elif isinstance(inner, str) and "message" not in body:
            return None, inner
        message = body.get("message")
        if message is None and "detail" in body:
            detail = body["detail"]
            message = detail if isinstance(detail, str) else str(detail)
        if isinstance(message, str) and message:
            # The name (``NOT_FOUND``), not google.rpc's number, when the body has both.
            names = [body.get(key) for key in ("status", "code", "type")]
            return next((n for n in names if isinstance(n, str) and n), None), message
    text = response.text.strip()
    return None, text or response.reason_phrase or f"HTTP {response.status_code}"


class Connection:
    """A gateway URL, an account and an API key, with one pooled HTTP client."""

    def __init__(
        self,
        base_url: str,
        account_id: str,
        api_key: str,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.account_id = account_id
        self._client = httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {api_key}", "User-Agent": USER_AGENT},
            timeout=timeout_s,
        )

    def __enter__(self) -> Connection:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def account_path(self, account: str | None = None) -> str:
        """``/v1/accounts/<account>``; the connection's account when none is given."""
        return f"/v1/accounts/{account or self.account_id}"

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Json | None = None,
    ) -> Json:
        """Send one call; the decoded JSON object (``{}`` for an empty body).

        Raises :class:`ApiError` on an HTTP error and :class:`ConnectionFailed` when the
        gateway cannot be reached.
        """
        described = f"{method} {path}"
        try:
            response = self._client.request(method, path, params=params, json=body)
        except httpx.TransportError as error:
            raise ConnectionFailed(f"{described}: cannot reach {self.base_url}: {error}") from error
        if response.is_error:
            code, message = error_details(response)
            raise ApiError(response.status_code, message, code=code, request=described)
        if not response.content:
            return {}
        try:
            decoded = response.json()
        except ValueError as error:
            raise ApiError(
                response.status_code, f"{described}: the answer is not JSON", request=described
            ) from error
        if not isinstance(decoded, dict):
            raise ApiError(response.status_code, f"{described}: the answer is not a JSON object")
        return decoded

    def paginate(self, path: str, key: str, query: ListQuery) -> Iterator[Json]:
        """Every item of a list, following ``nextPageToken`` until the last page.

        ``key`` is the collection's field in each page (``deployments``, ``apiKeys``).
        A server that hands out the same token twice would loop forever, so that is an
        error.
        """
        params = query.params()
        token = query.page_token
        seen: set[str] = set()
        returned = 0
        while True:
            page_params = dict(params)
            if token:
                page_params["pageToken"] = token
            page = self.request("GET", path, params=page_params)
            items = page.get(key) or []
            if not isinstance(items, list):
                raise ApiError(200, f"GET {path}: '{key}' is not a list")
            for item in items:
                if query.limit is not None and returned >= query.limit:
                    return
                returned += 1
                yield item
            token = page.get("nextPageToken") or None
            if not token:
                return
            if token in seen:
                raise ApiError(200, f"GET {path}: the server repeated page token {token!r}")
            seen.add(token)


_CAMEL_BOUNDARY = re.compile(r"(?<!^)(?=[A-Z])")


def update_mask(paths: Sequence[str]) -> str:
    """The ``updateMask`` value for camelCase field paths: snake_case, comma-separated,
    as Fireworks' field masks are written (``autoscalingPolicy.scaleUpWindow`` ->
    ``autoscaling_policy.scale_up_window``)."""
    return ",".join(
        ".".join(_CAMEL_BOUNDARY.sub("_", part).lower() for part in path.split("."))
        for path in paths
    )
