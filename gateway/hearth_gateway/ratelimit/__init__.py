"""Rate limits: sliding windows per bucket, in memory or shared through Redis.

`open_rate_limiter(None)` keeps the windows in this process (one gateway replica);
`open_rate_limiter("redis://...")` keeps them in Redis, so the limits hold across
replicas. Both backends have the semantics documented in `hearth_gateway.ratelimit.window`.
"""

from __future__ import annotations

from typing import Protocol

from hearth_gateway.ratelimit.memory import InMemoryRateLimiter
from hearth_gateway.ratelimit.redis_store import (
    DEFAULT_KEY_PREFIX,
    RateLimiterUnavailable,
    RedisRateLimiter,
)
from hearth_gateway.ratelimit.window import Decision

__all__ = [
    "Decision",
    "InMemoryRateLimiter",
    "RateLimiter",
    "RateLimiterUnavailable",
    "RedisRateLimiter",
    "open_rate_limiter",
]


class RateLimiter(Protocol):
    async def hit(self, bucket: str, limit: int, window_s: float, amount: int = 1) -> Decision:
        """Adds `amount` only when it fits (allowed); amount=0 only peeks."""
        ...

    async def charge(self, bucket: str, window_s: float, amount: int) -> None:
        """Adds `amount` unconditionally (tokens known only after the response)."""
        ...

    async def close(self) -> None: ...


def open_rate_limiter(
    redis_url: str | None, *, key_prefix: str = DEFAULT_KEY_PREFIX
) -> RateLimiter:
    """In memory for None; Redis for "redis://..." / "rediss://..." / "unix://..." URLs.

    Connecting is lazy: an unreachable Redis shows up as RateLimiterUnavailable on the
    first hit or charge, which the caller decides to fail open or closed on.
    """
    if redis_url is None:
        return InMemoryRateLimiter()
    scheme = redis_url.partition("://")[0].lower()
    if scheme not in ("redis", "rediss", "unix"):
        raise ValueError(
            f"rate limiter url: unsupported scheme {scheme!r}; use redis://host:port/db"
        )
    return RedisRateLimiter.from_url(redis_url, key_prefix=key_prefix)
