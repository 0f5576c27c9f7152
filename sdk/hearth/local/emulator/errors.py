"""Kubernetes-style API errors.

Clients (kopf, the official `kubernetes` client, kubectl) decide what to do from the
HTTP status *and* the `Status` body's `reason`: kopf treats 404 as "gone", 409 as a
conflict to retry, 422 from a JSON-patch `test` as "try again on the next cycle". So
every failure the emulator reports is an :class:`ApiError` rendered exactly as the
real API server renders it (`kind: Status`, `status: Failure`, `reason`, `details`).
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An error that becomes a `Status` response with the given HTTP code and reason."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        *,
        name: str | None = None,
        group: str | None = None,
        kind: str | None = None,
        causes: list[dict[str, str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.name = name
        self.group = group
        self.kind = kind
        self.causes = causes or []

    def status_body(self) -> dict[str, Any]:
        details: dict[str, Any] = {}
        if self.name is not None:
            details["name"] = self.name
        if self.group is not None:
            details["group"] = self.group
        if self.kind is not None:
            details["kind"] = self.kind
        if self.causes:
            details["causes"] = self.causes
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if details:
            body["details"] = details
        return body


def not_found(plural: str, name: str, group: str = "") -> ApiError:
    qualified = f"{plural}.{group}" if group else plural
    return ApiError(
        404, "NotFound", f'{qualified} "{name}" not found', name=name, group=group, kind=plural
    )


def already_exists(plural: str, name: str, group: str = "") -> ApiError:
    qualified = f"{plural}.{group}" if group else plural
    return ApiError(
        409,
        "AlreadyExists",
        f'{qualified} "{name}" already exists',
        name=name,
        group=group,
        kind=plural,
    )


def conflict(plural: str, name: str, group: str = "", why: str | None = None) -> ApiError:
    qualified = f"{plural}.{group}" if group else plural
    why = why or (
        "the object has been modified; "
        "please apply your changes to the latest version and try again"
    )
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {qualified} "{name}": {why}',
        name=name,
        group=group,
        kind=plural,
    )


def invalid(kind: str, name: str, causes: list[tuple[str, str]], group: str = "") -> ApiError:
    """422 Invalid with field causes, formatted like the API server's field errors."""
    text = ", ".join(f"{field}: {msg}" for field, msg in causes)
    return ApiError(
        422,
        "Invalid",
        f'{kind}.{group} "{name}" is invalid: {text}'
        if group
        else f'{kind} "{name}" is invalid: {text}',
        name=name,
        group=group,
        kind=kind,
        causes=[
            {"reason": "FieldValueInvalid", "message": msg, "field": field} for field, msg in causes
        ],
    )


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def forbidden(message: str, *, name: str | None = None, kind: str | None = None) -> ApiError:
    return ApiError(403, "Forbidden", message, name=name, kind=kind)


def method_not_allowed(
    message: str = "the server does not allow this method on the requested resource",
) -> ApiError:
    return ApiError(405, "MethodNotAllowed", message)


def unsupported_media_type(content_type: str) -> ApiError:
    return ApiError(
        415,
        "UnsupportedMediaType",
        "the body of the request was in an unknown format - accepted media types "
        "include: application/json-patch+json, application/merge-patch+json "
        f"(got {content_type})",
    )


def gone(message: str) -> ApiError:
    return ApiError(410, "Expired", message)
