"""The gateway's view of the cluster: one informer per kind, and the few writes it makes.

Requests never call the API server: they read :attr:`ClusterCache.state`. The only
write is raising a Deployment's replicas through the scale subresource (scale from zero).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from hearth.api import GROUP, VERSION
from hearth_operator.constants import API_KEY_SECRET_KEY, LABEL_DEPLOYMENT, LABEL_NAME, SERVER_APP

from .client import KubeClient, Obj
from .informer import Informer, ResourceType
from .state import ClusterState

log = logging.getLogger(__name__)

_HEARTH = f"/apis/{GROUP}/{VERSION}"


def _secret_token_only(secret: Obj) -> Obj:
    """Of a Secret, keep its identity and the API token; drop every other key."""
    metadata = secret.get("metadata") or {}
    data = secret.get("data") or {}
    return {
        "kind": "Secret",
        "metadata": {
            "name": metadata.get("name"),
            "namespace": metadata.get("namespace"),
            "labels": metadata.get("labels") or {},
            "resourceVersion": metadata.get("resourceVersion"),
        },
        "data": {API_KEY_SECRET_KEY: data[API_KEY_SECRET_KEY]}
        if API_KEY_SECRET_KEY in data
        else {},
    }


#: What the gateway watches. Pods and Secrets are narrowed by label to the model servers
#: and the Deployments' API-token Secrets the operator creates.
RESOURCES: tuple[ResourceType, ...] = (
    ResourceType("Account", f"{_HEARTH}/accounts"),
    ResourceType("User", f"{_HEARTH}/users"),
    ResourceType("ApiKey", f"{_HEARTH}/apikeys"),
    ResourceType("Model", f"{_HEARTH}/models"),
    ResourceType("Deployment", f"{_HEARTH}/deployments"),
    ResourceType("DeployedModel", f"{_HEARTH}/deployedmodels"),
    ResourceType("Pod", "/api/v1/pods", label_selector=f"{LABEL_NAME}={SERVER_APP}"),
    ResourceType(
        "Secret", "/api/v1/secrets", label_selector=LABEL_DEPLOYMENT, transform=_secret_token_only
    ),
)


class ClusterCache:
    """Runs the informers and tells waiters when anything changed."""

    def __init__(self, client: KubeClient, **informer_options: Any) -> None:
        self.client = client
        self.state = ClusterState()
        self.informers = [
            Informer(
                client, resource, self.state.store(resource.kind), self._changed, **informer_options
            )
            for resource in RESOURCES
        ]
        self._tasks: list[asyncio.Task[None]] = []
        self._waiters: set[asyncio.Future[None]] = set()
        self._scaling: dict[tuple[str, str], asyncio.Task[None]] = {}

    def _changed(self) -> None:
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()

    async def wait_changed(self, within: float) -> bool:
        """Wait until any cached object changes (True) or ``within`` seconds pass (False)."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.add(waiter)
        try:
            await asyncio.wait_for(waiter, within)
            return True
        except TimeoutError:
            return False
        finally:
            self._waiters.discard(waiter)

    async def start(self, *, sync_timeout: float = 60.0) -> None:
        """Start every informer and wait until each has listed once."""
        self._tasks = [
            asyncio.create_task(informer.run(), name=f"informer-{informer.resource.kind}")
            for informer in self.informers
        ]
        pending = [informer for informer in self.informers if not informer.synced.is_set()]
        try:
            await asyncio.wait_for(
                asyncio.gather(*(informer.synced.wait() for informer in pending)), sync_timeout
            )
        except TimeoutError:
            missing = ", ".join(
                f"{i.resource.kind} ({i.last_error or 'no answer'})"
                for i in self.informers
                if not i.synced.is_set()
            )
            await self.stop()
            raise RuntimeError(f"could not list from the API server: {missing}") from None

    async def stop(self) -> None:
        for task in [*self._tasks, *self._scaling.values()]:
            task.cancel()
        for task in [*self._tasks, *self._scaling.values()]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        await self.client.close()

    @property
    def connected(self) -> bool:
        return all(informer.connected for informer in self.informers)

    def sizes(self) -> dict[str, int]:
        return {informer.resource.kind: len(informer.store) for informer in self.informers}

    def scale_up(self, namespace: str, deployment: str, replicas: int = 1) -> None:
        """Raise a Deployment's replicas to ``replicas`` through the scale subresource.

        One patch in flight per Deployment (held requests share it); a failure is logged
        and the next held request tries again.
        """
        key = (namespace, deployment)
        running = self._scaling.get(key)
        if running is not None and not running.done():
            return
        self._scaling[key] = asyncio.create_task(self._scale(namespace, deployment, replicas))

    async def _scale(self, namespace: str, deployment: str, replicas: int) -> None:
        path = f"{_HEARTH}/namespaces/{namespace}/deployments/{deployment}/scale"
        try:
            await self.client.merge_patch(path, {"spec": {"replicas": replicas}})
            log.info("scaled deployment %s/%s to %d replica(s)", namespace, deployment, replicas)
        except Exception as error:
            log.warning("scaling deployment %s/%s failed: %s", namespace, deployment, error)
