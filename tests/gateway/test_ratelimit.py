"""Rate limits: one suite over both backends (in memory, and a real Redis at 127.0.0.1:6379),
plus what only one of them has (forgetting idle buckets; Redis keys and their expiry).

The exact window is checked with an injected clock on both backends (the Redis limiter then
sends the time instead of reading Redis' TIME); real time is used only with one-second
windows, waiting at least as long as the limiter said: no assertion depends on how fast
anything runs. Redis tests use a key prefix of their own, deleted afterwards.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Protocol

import pytest
import pytest_asyncio
import redis
from redis.asyncio import Redis
from redis.exceptions import RedisError

from hearth_gateway.ratelimit import (
    Decision,
    InMemoryRateLimiter,
    RateLimiter,
    RateLimiterUnavailable,
    RedisRateLimiter,
    open_rate_limiter,
)
from hearth_gateway.ratelimit.memory import SWEEP_EVERY
from hearth_gateway.ratelimit.redis_store import MAX_CONNECTIONS

REDIS_URL = os.environ.get("HEARTH_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _redis_unreachable() -> str | None:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        client.ping()
        return None
    except (RedisError, OSError) as error:
        return f"Redis not reachable at {REDIS_URL}: {error}"
    finally:
        client.close()


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix no other test uses; its keys are deleted afterwards."""
    reason = _redis_unreachable()
    if reason:
        pytest.skip(reason)
    prefix = f"test:ratelimit:{uuid.uuid4().hex}:"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


class MakeLimiter(Protocol):
    def __call__(self, clock: FakeClock | None = None) -> RateLimiter: ...


@pytest_asyncio.fixture(params=["memory", "redis"])
async def make_limiter(request: pytest.FixtureRequest) -> AsyncIterator[MakeLimiter]:
    """Makes limiters that share their buckets, like gateway replicas: one process's memory,
    or one Redis key prefix. Limiters made with the same clock share that clock."""
    made: list[RateLimiter] = []
    in_memory: dict[int, InMemoryRateLimiter] = {}
    prefix: str = request.getfixturevalue("redis_prefix") if request.param == "redis" else ""

    def make(clock: FakeClock | None = None) -> RateLimiter:
        if request.param == "memory":
            key = id(clock)
            if key not in in_memory:
                in_memory[key] = (
                    InMemoryRateLimiter() if clock is None else InMemoryRateLimiter(clock)
                )
            return in_memory[key]
        limiter = RedisRateLimiter.from_url(REDIS_URL, key_prefix=prefix, clock=clock)
        made.append(limiter)
        return limiter

    yield make
    for limiter in made:
        await limiter.close()


# -- semantics, on both backends -----------------------------------------------------------


@pytest.mark.asyncio
async def test_limit_is_respected_with_remaining_counting_down(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter()
    decisions = [await limiter.hit("rpm:acme", 3, 60) for _ in range(4)]
    assert [(d.allowed, d.limit, d.remaining) for d in decisions] == [
        (True, 3, 2),
        (True, 3, 1),
        (True, 3, 0),
        (False, 3, 0),
    ]
    assert [d.reset_after_s for d in decisions[:3]] == [0.0, 0.0, 0.0]
    assert 0 < decisions[3].reset_after_s <= 60


@pytest.mark.asyncio
async def test_amounts_are_added_only_when_they_fit(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter()
    assert (await limiter.hit("b", 10, 60, 6)).remaining == 4
    too_big = await limiter.hit("b", 10, 60, 5)
    assert (too_big.allowed, too_big.remaining) == (False, 4)
    assert 0 < too_big.reset_after_s <= 60
    exact = await limiter.hit("b", 10, 60, 4)
    assert (exact.allowed, exact.remaining) == (True, 0)


@pytest.mark.asyncio
async def test_peek_and_charge_as_a_token_budget(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter()
    # A peek takes nothing, however often.
    for _ in range(3):
        assert await limiter.hit("tpm:acme", 100, 60, 0) == Decision(True, 100, 100, 0.0)
    await limiter.charge("tpm:acme", 60, 40)
    assert (await limiter.hit("tpm:acme", 100, 60, 0)).remaining == 60
    # Tokens are known only after the response: the charge may overshoot the limit ...
    await limiter.charge("tpm:acme", 60, 90)
    over = await limiter.hit("tpm:acme", 100, 60, 0)
    # ... and then even a peek is refused, until enough leaves the window.
    assert (over.allowed, over.remaining) == (False, 0)
    assert 0 < over.reset_after_s <= 60
    await limiter.charge("tpm:acme", 60, 0)  # charging nothing changes nothing
    assert (await limiter.hit("tpm:acme", 100, 60, 0)).remaining == 0


@pytest.mark.asyncio
async def test_a_peek_is_refused_at_the_limit_exactly(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter()
    await limiter.charge("tpm", 60, 50)
    assert (await limiter.hit("tpm", 50, 60, 0)).allowed is False
    assert (await limiter.hit("tpm", 51, 60, 0)).allowed is True


@pytest.mark.asyncio
async def test_hits_that_can_never_fit_wait_a_whole_window(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter()
    assert await limiter.hit("zero", 0, 30) == Decision(False, 0, 0, 30.0)
    assert await limiter.hit("zero", 0, 30, 0) == Decision(False, 0, 0, 30.0)
    assert await limiter.hit("small", 5, 30, 6) == Decision(False, 5, 5, 30.0)


@pytest.mark.asyncio
async def test_buckets_are_independent(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter()
    assert (await limiter.hit("rpm:a", 1, 60)).allowed
    assert not (await limiter.hit("rpm:a", 1, 60)).allowed
    assert (await limiter.hit("rpm:b", 1, 60)).allowed


@pytest.mark.asyncio
async def test_concurrent_hits_never_pass_the_limit(make_limiter: MakeLimiter) -> None:
    first, second = make_limiter(), make_limiter()
    decisions = await asyncio.gather(
        *(limiter.hit("burst", 7, 60) for limiter in (first, second) for _ in range(15))
    )
    assert sum(d.allowed for d in decisions) == 7
    assert sorted(d.remaining for d in decisions if d.allowed) == list(range(7))


@pytest.mark.asyncio
async def test_arguments_out_of_range_are_refused_by_name(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter()
    with pytest.raises(ValueError, match=r"limit: must be >= 0.*amount: must be >= 0"):
        await limiter.hit("b", -1, 60, -2)
    with pytest.raises(ValueError, match="window_s: must be a positive number"):
        await limiter.hit("b", 1, 0)
    with pytest.raises(ValueError, match="window_s: must be a positive number"):
        await limiter.charge("b", float("inf"), 1)
    with pytest.raises(ValueError, match="amount: must be >= 0"):
        await limiter.charge("b", 1, -1)


@pytest.mark.asyncio
async def test_window_recovers(make_limiter: MakeLimiter) -> None:
    """Real time, a one-second window: refused, then allowed again once it has passed."""
    limiter = make_limiter()
    assert (await limiter.hit("short", 2, 1.0)).allowed
    assert (await limiter.hit("short", 2, 1.0)).allowed
    denied = await limiter.hit("short", 2, 1.0)
    assert not denied.allowed
    assert 0 < denied.reset_after_s <= 1.0
    # Waiting reset_after_s (and a little for the clocks' granularity) is always enough.
    await asyncio.sleep(denied.reset_after_s + 0.01)
    assert (await limiter.hit("short", 2, 1.0)).allowed


# -- the exact window, with an injected clock ----------------------------------------------


@pytest.mark.asyncio
async def test_sliding_window_with_an_injected_clock(make_limiter: MakeLimiter) -> None:
    clock = FakeClock()
    limiter = make_limiter(clock)
    t0 = clock.now
    assert (await limiter.hit("b", 5, 60, 2)).remaining == 3  # t0: 2
    clock.now = t0 + 30
    assert (await limiter.hit("b", 5, 60, 3)).remaining == 0  # t0+30: 3
    clock.now = t0 + 40
    # 1 more fits once the 2 from t0 leave, at t0 + 60: 20 s from now.
    assert await limiter.hit("b", 5, 60, 1) == Decision(False, 5, 0, 20.0)
    # 4 more need the entry from t0+30 gone too: at t0 + 90.
    assert await limiter.hit("b", 5, 60, 4) == Decision(False, 5, 0, 50.0)
    clock.now = t0 + 60 - 1e-3
    assert not (await limiter.hit("b", 5, 60, 1)).allowed
    clock.now = t0 + 60  # the entry from t0 counts while now < t0 + 60
    assert await limiter.hit("b", 5, 60, 2) == Decision(True, 5, 0, 0.0)
    clock.now = t0 + 90
    assert await limiter.hit("b", 5, 60, 0) == Decision(True, 5, 3, 0.0)
    clock.now = t0 + 120
    assert await limiter.hit("b", 5, 60, 0) == Decision(True, 5, 5, 0.0)


@pytest.mark.asyncio
async def test_reset_after_points_at_the_first_moment_the_hit_fits(
    make_limiter: MakeLimiter,
) -> None:
    clock = FakeClock()
    limiter, replica = make_limiter(clock), make_limiter(clock)
    for step in range(250):  # more entries than the Redis script reads in one batch
        clock.now = 1000.0 + step * 0.1
        assert (await limiter.hit("b", 250, 60)).allowed
    await replica.charge("b", 60, 5)
    # used 255 of 250: a hit of 3 needs used <= 247, i.e. the 8 oldest entries gone.
    denied = await replica.hit("b", 250, 60, 3)
    assert (denied.allowed, denied.remaining) == (False, 0)
    assert denied.reset_after_s == pytest.approx(1000.7 + 60 - clock.now)
    start = clock.now
    clock.now = start + denied.reset_after_s - 1e-3
    assert not (await limiter.hit("b", 250, 60, 3)).allowed
    clock.now = start + denied.reset_after_s
    assert await limiter.hit("b", 250, 60, 3) == Decision(True, 250, 0, 0.0)


@pytest.mark.asyncio
async def test_expired_in_memory_buckets_are_forgotten() -> None:
    clock = FakeClock()
    limiter = InMemoryRateLimiter(clock)
    for n in range(100):
        await limiter.hit(f"rpm:{n}", 10, 60)
    assert len(limiter) == 100
    clock.now += 60
    for _ in range(SWEEP_EVERY):
        await limiter.hit("busy", 10**9, 60)
    assert len(limiter) == 1


# -- Redis: several replicas, atomicity, expiry --------------------------------------------


@pytest.mark.asyncio
async def test_two_replicas_share_one_redis_bucket(redis_prefix: str) -> None:
    one = RedisRateLimiter.from_url(REDIS_URL, key_prefix=redis_prefix)
    two = RedisRateLimiter.from_url(REDIS_URL, key_prefix=redis_prefix)
    other = RedisRateLimiter.from_url(REDIS_URL, key_prefix=redis_prefix + "other:")
    try:
        assert (await one.hit("rpm:acme", 4, 60)).remaining == 3
        assert (await two.hit("rpm:acme", 4, 60)).remaining == 2
        await one.charge("tpm:acme", 60, 70)
        assert (await two.hit("tpm:acme", 100, 60, 0)).remaining == 30
        assert (await two.hit("rpm:acme", 4, 60, 2)).remaining == 0
        assert not (await one.hit("rpm:acme", 4, 60)).allowed
        # Another key prefix is another set of buckets.
        assert (await other.hit("rpm:acme", 4, 60)).remaining == 3
    finally:
        for limiter in (one, two, other):
            await limiter.close()


@pytest.mark.asyncio
async def test_more_calls_in_flight_than_redis_connections(redis_prefix: str) -> None:
    limiter = RedisRateLimiter.from_url(REDIS_URL, key_prefix=redis_prefix)
    try:
        calls = 4 * MAX_CONNECTIONS + 150  # past redis-py's default pool of 100 too
        decisions = await asyncio.gather(*(limiter.hit("busy", 100, 60) for _ in range(calls)))
    finally:
        await limiter.close()
    assert sum(d.allowed for d in decisions) == 100


@pytest.mark.asyncio
async def test_redis_keys_expire_with_the_window(redis_prefix: str) -> None:
    limiter = RedisRateLimiter.from_url(REDIS_URL, key_prefix=redis_prefix)
    client = Redis.from_url(REDIS_URL)
    try:
        await limiter.hit("b", 5, 1.0)
        keys = limiter.keys("b")
        ttls = [await client.pttl(key) for key in keys]
        assert all(0 < ttl <= 1001 for ttl in ttls), ttls

        for _ in range(200):  # keys expire one window (1 s) after the newest entry
            if await client.exists(*keys) == 0:
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail(f"keys {keys} still exist after 10 s")
        # A refused hit or a peek on an empty bucket leaves no key behind.
        await limiter.hit("empty", 0, 1.0)
        await limiter.hit("empty", 5, 1.0, 0)
        assert await client.exists(*limiter.keys("empty")) == 0
    finally:
        await limiter.close()
        await client.aclose()


@pytest.mark.asyncio
async def test_unreachable_redis_is_reported_as_unavailable() -> None:
    limiter = open_rate_limiter("redis://127.0.0.1:1/0")
    try:
        with pytest.raises(RateLimiterUnavailable, match="redis rate limiter"):
            await limiter.hit("b", 1, 60)
    finally:
        await limiter.close()


def test_open_rate_limiter_backends() -> None:
    assert isinstance(open_rate_limiter(None), InMemoryRateLimiter)
    with pytest.raises(ValueError, match="unsupported scheme 'memcached'"):
        open_rate_limiter("memcached://127.0.0.1:11211")
