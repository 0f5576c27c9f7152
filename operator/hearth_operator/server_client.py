"""Calls from the operator to hearth-server replicas: load and unload LoRA adapters.

Each Deployment's servers require its API token (``Authorization: Bearer``); the caller
passes it from the Deployment's Secret.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx


@dataclass(frozen=True)
class CallResult:
    ok: bool
    message: str = ""


def _url(pod_ip: str, port: int, path: str) -> str:
    return f"http://{pod_ip}:{port}{path}"


def _headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def _error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:500]
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    return response.text[:500]


def load_adapter(
    pod_ip: str,
    port: int,
    lora_name: str,
    lora_path: str,
    *,
    api_key: str | None,
    timeout: float,
) -> CallResult:
    """POST /v1/load_lora_adapter; loading one that is already loaded counts as success."""
    try:
        response = httpx.post(
            _url(pod_ip, port, "/v1/load_lora_adapter"),
            json={"lora_name": lora_name, "lora_path": lora_path},
            headers=_headers(api_key),
            timeout=timeout,
        )
    except httpx.HTTPError as error:
        return CallResult(False, f"could not reach the server: {error}")
    if response.status_code == 200:
        return CallResult(True)
    text = _error_text(response)
    if response.status_code == 400 and "already" in text.lower():
        return CallResult(True, text)
    return CallResult(False, f"HTTP {response.status_code}: {text}")


def unload_adapter(
    pod_ip: str, port: int, lora_name: str, *, api_key: str | None, timeout: float
) -> CallResult:
    """POST /v1/unload_lora_adapter; an adapter the server does not have counts as unloaded."""
    try:
        response = httpx.post(
            _url(pod_ip, port, "/v1/unload_lora_adapter"),
            json={"lora_name": lora_name},
            headers=_headers(api_key),
            timeout=timeout,
        )
    except httpx.HTTPError as error:
        return CallResult(False, f"could not reach the server: {error}")
    if response.status_code in (200, 404):
        return CallResult(True)
    return CallResult(False, f"HTTP {response.status_code}: {_error_text(response)}")
