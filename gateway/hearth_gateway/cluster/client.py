"""A small asyncio client for the Kubernetes API: list, watch and patch, over httpx.

Where the cluster is and how to authenticate comes from the official ``kubernetes``
package (the one the operator uses): it reads kubeconfig files (tokens, client
certificates, exec plugins) and the in-cluster service account, and refreshes rotating
tokens. Its API calls are blocking (urllib3) and its watch is a blocking generator, so
the requests themselves go through httpx, which the gateway already uses to proxy:
one event loop, no thread per watch.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import kubernetes

Obj = dict[str, Any]


class KubeError(Exception):
    """The API server answered with an error status (or could not be reached)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}" if status else message)
        self.status = status
        self.message = message


class WatchExpired(KubeError):
    """The watch's resourceVersion is too old (410 Gone): list again."""


@dataclass(frozen=True)
class ConnectionInfo:
    """Where the API server is, as resolved at startup (for the startup log)."""

    host: str
    source: str  # "in-cluster" or the kubeconfig path


def load_configuration(
    kubeconfig: str | None = None, *, in_cluster: bool | None = None
) -> tuple[kubernetes.client.Configuration, ConnectionInfo]:
    """The API server's address and credentials.

    ``in_cluster=True`` uses the pod's service account; ``False`` a kubeconfig file
    (``kubeconfig``, else ``$KUBECONFIG``, else ``~/.kube/config``); ``None`` tries the
    service account first when no kubeconfig is named, as kubectl-style tools do.
    """
    configuration = kubernetes.client.Configuration()
    if in_cluster or (in_cluster is None and kubeconfig is None):
        try:
            kubernetes.config.load_incluster_config(  # type: ignore[no-untyped-call]
                client_configuration=configuration
            )
            return configuration, ConnectionInfo(configuration.host, "in-cluster")
        except kubernetes.config.ConfigException:
            if in_cluster:
                raise
    kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
        config_file=kubeconfig, client_configuration=configuration
    )
    return configuration, ConnectionInfo(configuration.host, kubeconfig or "default kubeconfig")


def _ssl_context(configuration: kubernetes.client.Configuration) -> ssl.SSLContext | bool:
    if not configuration.host.startswith("https"):
        return False
    if not configuration.verify_ssl:
        return False
    context = ssl.create_default_context(cafile=configuration.ssl_ca_cert or None)
    if configuration.cert_file:
        context.load_cert_chain(configuration.cert_file, configuration.key_file or None)
    return context


class KubeClient:
    """List, watch and patch against one API server; objects are plain dicts."""

    def __init__(
        self, configuration: kubernetes.client.Configuration, *, timeout: float = 30.0
    ) -> None:
        self.configuration = configuration
        self.host = configuration.host.rstrip("/")
        self._http = httpx.AsyncClient(
            base_url=self.host,
            verify=_ssl_context(configuration),
            timeout=httpx.Timeout(timeout, connect=5.0),
        )

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        # Calls the refresh hook, so a rotated service-account token is picked up.
        token = self.configuration.get_api_key_with_prefix("authorization")
        if token:
            headers["Authorization"] = token
        elif self.configuration.username:
            basic = self.configuration.get_basic_auth_token()
            if basic:
                headers["Authorization"] = basic
        return headers

    async def close(self) -> None:
        await self._http.aclose()

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Obj | None = None,
        body: Obj | None = None,
        content_type: str = "application/json",
    ) -> Obj:
        headers = self._headers()
        content = None
        if body is not None:
            content = json.dumps(body).encode()
            headers["Content-Type"] = content_type
        try:
            response = await self._http.request(
                method, path, params=params, headers=headers, content=content
            )
        except httpx.HTTPError as error:
            raise KubeError(0, f"{method} {path}: {type(error).__name__}: {error}") from error
        if response.status_code >= 400:
            raise _error_of(response.status_code, response.text, f"{method} {path}")
        result: Obj = response.json()
        return result

    async def list(self, path: str, *, label_selector: str | None = None) -> tuple[list[Obj], str]:
        """Every object under ``path`` (pages of 500) and the list's resourceVersion."""
        items: list[Obj] = []
        params: Obj = {"limit": 500}
        if label_selector:
            params["labelSelector"] = label_selector
        while True:
            page = await self._request("GET", path, params=params)
            items.extend(page.get("items") or [])
            metadata = page.get("metadata") or {}
            if not metadata.get("continue"):
                return items, str(metadata.get("resourceVersion") or "")
            params["continue"] = metadata["continue"]

    async def watch(
        self,
        path: str,
        resource_version: str,
        *,
        label_selector: str | None = None,
        timeout_seconds: int = 240,
        on_open: Callable[[], None] | None = None,
    ) -> AsyncIterator[Obj]:
        """Watch events (``{"type", "object"}``) from ``resource_version`` until the server
        ends the watch; raises :class:`WatchExpired` when the version is too old.
        ``on_open`` is called once the server has accepted the watch."""
        params: Obj = {
            "watch": "true",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": timeout_seconds,
        }
        if label_selector:
            params["labelSelector"] = label_selector
        timeout = httpx.Timeout(timeout_seconds + 30.0, connect=5.0)
        try:
            async with self._http.stream(
                "GET", path, params=params, headers=self._headers(), timeout=timeout
            ) as response:
                if response.status_code >= 400:
                    text = (await response.aread()).decode(errors="replace")
                    raise _error_of(response.status_code, text, f"watch {path}")
                if on_open is not None:
                    on_open()
                async for line in response.aiter_lines():
                    if not line.strip():
                        continue
                    event: Obj = json.loads(line)
                    if event.get("type") == "ERROR":
                        status = event.get("object") or {}
                        code = int(status.get("code") or 500)
                        raise _error_of(code, json.dumps(status), f"watch {path}")
                    yield event
        except httpx.HTTPError as error:
            raise KubeError(0, f"watch {path}: {type(error).__name__}: {error}") from error

    async def merge_patch(self, path: str, patch: Obj) -> Obj:
        """A JSON merge patch (also valid on the scale subresource)."""
        return await self._request(
            "PATCH", path, body=patch, content_type="application/merge-patch+json"
        )


def _error_of(status: int, text: str, what: str) -> KubeError:
    try:
        message = str(json.loads(text).get("message") or text)
    except (ValueError, AttributeError):
        message = text
    cls = WatchExpired if status == 410 else KubeError
    return cls(status, f"{what}: {message[:500]}")
