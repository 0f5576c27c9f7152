"""List+watch of one resource type into a :class:`~.state.Store`.

The loop: list (the store is replaced by what the list holds), then watch from the
list's resourceVersion and apply each event; when the watch ends it resumes from the
last version seen; 410 Gone (history compacted) lists again; any other failure keeps
the store as it is (the gateway goes on serving from it), waits with a capped, jittered
backoff and resumes.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass

from .client import KubeClient, KubeError, Obj, WatchExpired
from .state import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ResourceType:
    kind: str
    #: The cluster-wide collection path, e.g. ``/api/v1/pods``.
    path: str
    label_selector: str | None = None
    #: Keep only what the gateway needs of each object (e.g. one key of a Secret).
    transform: Callable[[Obj], Obj] | None = None


class Informer:
    """Keeps ``store`` equal to the API server's objects of one type."""

    def __init__(
        self,
        client: KubeClient,
        resource: ResourceType,
        store: Store,
        on_change: Callable[[], None],
        *,
        backoff_initial: float = 0.2,
        backoff_max: float = 10.0,
        watch_timeout_seconds: int = 240,
    ) -> None:
        self.client = client
        self.resource = resource
        self.store = store
        self.on_change = on_change
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.watch_timeout_seconds = watch_timeout_seconds
        #: Set once the first list has been applied.
        self.synced = asyncio.Event()
        #: Whether the last list or watch call reached the API server.
        self.connected = False
        self.last_error: str | None = None

    def _shape(self, obj: Obj) -> Obj:
        obj.setdefault("kind", self.resource.kind)
        return self.resource.transform(obj) if self.resource.transform else obj

    async def _list(self) -> str:
        items, version = await self.client.list(
            self.resource.path, label_selector=self.resource.label_selector
        )
        self.store.replace(self._shape(item) for item in items)
        self.connected = True
        self.synced.set()
        self.on_change()
        return version

    def _opened(self) -> None:
        self.connected = True

    async def _watch(self, version: str) -> str:
        async for event in self.client.watch(
            self.resource.path,
            version,
            label_selector=self.resource.label_selector,
            timeout_seconds=self.watch_timeout_seconds,
            on_open=self._opened,
        ):
            obj = event.get("object") or {}
            version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
            kind = event.get("type")
            if kind == "BOOKMARK":
                continue
            if kind in ("ADDED", "MODIFIED"):
                self.store.upsert(self._shape(obj))
            elif kind == "DELETED":
                self.store.delete(obj)
            else:
                continue
            self.on_change()
        return version

    async def run(self) -> None:
        delay = self.backoff_initial
        version: str | None = None
        while True:
            try:
                if version is None:
                    version = await self._list()
                version = await self._watch(version)
                delay = self.backoff_initial
            except WatchExpired:
                version = None  # relist at once
            except (KubeError, ValueError) as error:
                if self.connected or self.last_error is None:
                    log.warning(
                        "%s watch failed (serving from the cache): %s", self.resource.kind, error
                    )
                self.connected = False
                self.last_error = str(error)
                # Resume from the last version seen (a 410 then makes it list again).
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, self.backoff_max)
