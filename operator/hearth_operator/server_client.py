"""Calls from the operator to model-server replicas: load and unload LoRA adapters.

The request each engine takes (hearth-server or vLLM) comes from ``planning/engines.py``;
this module only sends it. Each Deployment's servers require its API token
(``Authorization: Bearer``); the caller passes it from the Deployment's Secret.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from hearth.api import ServingEngine

from .planning.engines import AdapterCall, load_adapter_call, unload_adapter_call


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
    if not isinstance(body, dict):
        return response.text[:500]
    error = body.get("error")
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    if body.get("message"):  # vLLM before 0.10: {"object": "error", "message": ...}
        return str(body["message"])
    return response.text[:500]


def _post(
    pod_ip: str, port: int, call: AdapterCall, api_key: str | None, timeout: float
) -> httpx.Response:
    return httpx.post(
        _url(pod_ip, port, call.path), json=call.body, headers=_headers(api_key), timeout=timeout
    )


def load_adapter(
    pod_ip: str,
    port: int,
    lora_name: str,
    lora_path: str,
    *,
    api_key: str | None,
    timeout: float,
    engine: ServingEngine = ServingEngine.HEARTH,
    pvc_mount_root: str = "",
) -> CallResult:
    """POST /v1/load_lora_adapter; loading one that is already loaded counts as success.

    ``lora_path`` is the adapter Model's source URI, translated for ``engine``.
    """
    try:
        call = load_adapter_call(engine, lora_name, lora_path, pvc_mount_root)
    except ValueError as error:
        return CallResult(False, str(error))
    try:
        response = _post(pod_ip, port, call, api_key, timeout)
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
        response = _post(pod_ip, port, unload_adapter_call(lora_name), api_key, timeout)
    except httpx.HTTPError as error:
        return CallResult(False, f"could not reach the server: {error}")
    if response.status_code in (200, 404):
        return CallResult(True)
    return CallResult(False, f"HTTP {response.status_code}: {_error_text(response)}")
