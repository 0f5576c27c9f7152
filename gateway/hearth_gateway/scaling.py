"""Holding a request until its deployment has a replica that can answer (scale from zero).

When a route has no usable replica, a Deployment that wants none (``minReplicaCount: 0``
and nothing asked for) is scaled to one through its scale subresource; the request then
waits, re-resolving its route at every change the watches bring, until a replica is
ready (and, for an addon, has the adapter loaded) or the timeout passes (503 with
Retry-After). Requests held for the same Deployment share one scale call.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from .cluster.state import ClusterState
from .errors import GatewayError
from .metrics import Metrics
from .routing import Route

#: Longest single wait between two looks at the route (a safety net besides watch events).
POLL_S = 5.0


class ReplicaSource(Protocol):
    state: ClusterState

    async def wait_changed(self, within: float) -> bool: ...

    def scale_up(self, namespace: str, deployment: str, replicas: int = 1) -> None: ...


async def hold_for_replicas(
    route: Route,
    again: Callable[[], Route],
    cache: ReplicaSource,
    metrics: Metrics,
    *,
    timeout_s: float,
    retry_after_s: int,
) -> Route:
    """``route`` once it has a usable replica; raises :class:`GatewayError` 503 on timeout
    (and what ``again`` raises, e.g. when the model is undeployed meanwhile)."""
    if route.usable:
        return route
    deadline = time.monotonic() + timeout_s
    asked = False
    metrics.held.inc()
    try:
        while True:
            if route.desired_replicas == 0 and not asked:
                cache.scale_up(route.namespace, route.deployment_id, 1)
                metrics.scale_ups.inc()
                asked = True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise GatewayError(
                    503,
                    f"deployment {route.deployment} has no ready replica yet "
                    f"(waited {timeout_s:g} s); retry later",
                    {"retry-after": str(retry_after_s)},
                )
            await cache.wait_changed(min(remaining, POLL_S))
            route = again()
            if route.usable:
                return route
            if route.desired_replicas > 0:
                asked = False  # scaled; ask again only if it drops back to zero
    finally:
        metrics.held.dec()
