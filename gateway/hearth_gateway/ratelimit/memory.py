"""Rate limits held in this process's memory: exact for one gateway replica."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from hearth_gateway.ratelimit.window import (
    Decision,
    allowed,
    check_charge,
    check_hit,
    fits,
    refused,
)

# Every this many calls, buckets whose entries have all left their window are dropped.
SWEEP_EVERY = 1024


@dataclass
class _Bucket:
    window_s: float
    entries: deque[tuple[float, int]] = field(default_factory=deque)
    used: int = 0

    def expire(self, now: float) -> None:
        entries = self.entries
        while entries and entries[0][0] + self.window_s <= now:
            self.used -= entries.popleft()[1]


class InMemoryRateLimiter:
    """`RateLimiter` in memory, with the semantics of `hearth_gateway.ratelimit.window`.

    Safe to share between asyncio tasks (and threads): each call is one critical section
    with no await inside. `clock` returns seconds (monotonic by default; tests inject one).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()
        self._calls = 0

    def __len__(self) -> int:
        """How many buckets are held (expired ones go at the next sweep)."""
        return len(self._buckets)

    async def hit(self, bucket: str, limit: int, window_s: float, amount: int = 1) -> Decision:
        check_hit(limit, window_s, amount)
        with self._lock:
            now = self._clock()
            state = self._bucket(bucket, window_s, now)
            if not fits(state.used, limit, amount):
                return refused(state.entries, state.used, now, limit, window_s, amount)
            self._add(state, now, amount)
            return allowed(state.used, limit)

    async def charge(self, bucket: str, window_s: float, amount: int) -> None:
        check_charge(window_s, amount)
        with self._lock:
            now = self._clock()
            self._add(self._bucket(bucket, window_s, now), now, amount)

    async def close(self) -> None:
        with self._lock:
            self._buckets.clear()

    def _bucket(self, name: str, window_s: float, now: float) -> _Bucket:
        self._calls += 1
        if self._calls % SWEEP_EVERY == 0:
            self._sweep(now)
        state = self._buckets.get(name)
        if state is None:
            state = self._buckets[name] = _Bucket(window_s)
        state.window_s = window_s
        state.expire(now)
        return state

    def _add(self, state: _Bucket, now: float, amount: int) -> None:
        if amount > 0:
            state.entries.append((now, amount))
            state.used += amount

    def _sweep(self, now: float) -> None:
        for name, state in list(self._buckets.items()):
            state.expire(now)
            if not state.entries:
                del self._buckets[name]
