"""The gateway's running parts, and what happens after each answer (usage, metrics)."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from typing import Protocol

from .cluster.state import ClusterState
from .config import GatewayConfig
from .ledger import Ledger, UsageRecord
from .limits import Limiter, Quota, charge_tokens
from .metrics import Metrics
from .proxy import Exchange, Proxy
from .routing import Route
from .scaling import ReplicaSource
from .usage import Usage

log = logging.getLogger(__name__)


class Cache(ReplicaSource, Protocol):
    @property
    def connected(self) -> bool: ...

    def sizes(self) -> dict[str, int]: ...

    async def stop(self) -> None: ...


class Gateway:
    def __init__(
        self,
        config: GatewayConfig,
        cache: Cache,
        ledger: Ledger,
        limiter: Limiter,
    ) -> None:
        self.config = config
        self.cache = cache
        self.ledger = ledger
        self.limiter = limiter
        self.metrics = Metrics()
        self.proxy = Proxy(config, self.metrics)
        self._pending: set[asyncio.Task[None]] = set()

    @property
    def state(self) -> ClusterState:
        return self.cache.state

    def count(self, account: str, model: str, status: int) -> None:
        self.metrics.requests.labels(account, model, str(status)).inc()

    def finish(self, ex: Exchange, route: Route, status: int, usage: Usage) -> asyncio.Future[None]:
        """After an answer from a model server: metrics now, the usage record and the
        token charge in a task (tracked, and awaited at shutdown). Returns a future done
        once the record is written (or failed), for the proxy to hold the answer's end."""
        ex.finished = True
        account = ex.principal.account
        self.count(account, route.deployed_model, status)
        self.metrics.latency.observe(_elapsed(ex))
        if usage.prompt_tokens:
            self.metrics.tokens.labels(account, route.deployed_model, "prompt").inc(
                usage.prompt_tokens
            )
        if usage.completion_tokens:
            self.metrics.tokens.labels(account, route.deployed_model, "completion").inc(
                usage.completion_tokens
            )
        loop = asyncio.get_running_loop()
        recorded: asyncio.Future[None] = loop.create_future()
        task = loop.create_task(self._after(ex, route, status, usage, recorded))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        return recorded

    async def _after(
        self,
        ex: Exchange,
        route: Route,
        status: int,
        usage: Usage,
        recorded: asyncio.Future[None],
    ) -> None:
        principal = ex.principal
        record = UsageRecord(
            request_id=ex.request_id,
            time=datetime.now(UTC),
            account=principal.account,
            user=principal.user,
            key_id=principal.key_id,
            model=ex.client_model,
            deployment=route.deployment,
            serverless=route.serverless,
            prompt_tokens=usage.prompt_tokens,
            cached_tokens=usage.cached_tokens,
            completion_tokens=usage.completion_tokens,
            status=status,
            latency_ms=_elapsed(ex) * 1000.0,
        )
        try:
            await self.ledger.record(record)
        except Exception:
            log.exception("usage record %s could not be written", ex.request_id)
        finally:
            recorded.set_result(None)  # the answer's end may go out now
        if route.serverless:
            quota = Quota.of_account(self.state.account(principal.account))
            try:
                await charge_tokens(self.limiter, principal.account, quota, usage.total)
            except Exception:
                log.exception("tokens of %s could not be charged", ex.request_id)

    async def drain(self) -> None:
        """Wait for every usage record still being written."""
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)

    async def close(self) -> None:
        await self.drain()
        await self.proxy.close()


def _elapsed(ex: Exchange) -> float:
    return max(time.monotonic() - ex.started, 0.0)
