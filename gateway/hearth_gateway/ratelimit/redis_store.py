"""Rate limits in Redis, shared by every gateway replica that uses the same Redis.

Each call is one Lua script, so it is atomic however many replicas hit the bucket, and it
reads the clock from Redis (TIME), so replicas with skewed clocks still agree. Time is kept
in whole microseconds. The
semantics are those of `hearth_gateway.ratelimit.window`, re-stated in Lua below.

Per bucket, two keys sharing one hash tag (so they sit in one Redis Cluster slot):
- <prefix>{<bucket>}:log   sorted set, one member "<seq>:<amount>" per entry, scored by
                           its time in microseconds;
- <prefix>{<bucket>}:meta  hash: `used` (sum of the logged amounts), `seq` (member ids).
Both expire one window after the newest entry, and are deleted once empty.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import RedisError

from hearth_gateway.ratelimit.window import Decision, check_charge, check_hit

DEFAULT_KEY_PREFIX = "hearth:ratelimit:"
MAX_CONNECTIONS = 32
CONNECTION_WAIT_S = 10.0

# ARGV: window (microseconds), limit (-1: charge, adds unconditionally), amount, and the
# time in microseconds ('' for Redis' own clock).
# Returns {allowed 0/1, used after the call, reset_after in microseconds}.
_SCRIPT = """
local log, meta = KEYS[1], KEYS[2]
local window = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local amount = tonumber(ARGV[3])
local now = tonumber(ARGV[4])
if now == nil then
  local clock = redis.call('TIME')
  now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
end

local function amount_of(member)
  return tonumber(string.match(member, ':(%d+)$'))
end

-- Entries count while now < time + window: drop the others.
local used = 0
if redis.call('EXISTS', log) == 1 then
  used = tonumber(redis.call('HGET', meta, 'used') or '0')
  local horizon = now - window
  local expired = redis.call('ZRANGEBYSCORE', log, '-inf', horizon)
  if #expired > 0 then
    for _, member in ipairs(expired) do
      used = used - amount_of(member)
    end
    redis.call('ZREMRANGEBYSCORE', log, '-inf', horizon)
  end
end

local allowed = limit < 0 or (used < limit and used + amount <= limit)
local reset = 0
if allowed and amount > 0 then
  local seq = redis.call('HINCRBY', meta, 'seq', 1)
  redis.call('ZADD', log, now, seq .. ':' .. amount)
  used = used + amount
  local ttl = math.ceil(window / 1000) + 1
  redis.call('PEXPIRE', log, ttl)
  redis.call('PEXPIRE', meta, ttl)
elseif not allowed then
  -- How long until the oldest entries leave enough room for the same hit.
  local target = limit - math.max(amount, 1)
  reset = window
  if target >= 0 then
    local left = used
    local start = 0
    local found = false
    while not found do
      local batch = redis.call('ZRANGE', log, start, start + 99, 'WITHSCORES')
      if #batch == 0 then break end
      for i = 1, #batch, 2 do
        left = left - amount_of(batch[i])
        if left <= target then
          reset = tonumber(batch[i + 1]) + window - now
          found = true
          break
        end
      end
      start = start + 100
    end
  end
end

if used > 0 then
  redis.call('HSET', meta, 'used', used)
else
  redis.call('DEL', log, meta)
end
return {allowed and 1 or 0, used, reset}
"""


class RateLimiterUnavailable(RuntimeError):
    """The rate limit store could not be reached or answered with an error."""


class RedisRateLimiter:
    """`RateLimiter` on Redis; several instances (replicas) with the same Redis and
    key prefix share every bucket.

    The time is Redis' own (TIME) unless `clock` (seconds) is given: tests inject one, and
    every instance sharing a bucket must then use the same clock.
    """

    def __init__(
        self,
        client: Redis,
        *,
        key_prefix: str = DEFAULT_KEY_PREFIX,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._client = client
        self._prefix = key_prefix
        self._clock = clock
        self._script = client.register_script(_SCRIPT)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        key_prefix: str = DEFAULT_KEY_PREFIX,
        clock: Callable[[], float] | None = None,
    ) -> RedisRateLimiter:
        # A blocking pool: past MAX_CONNECTIONS calls in flight, a call waits for a free
        # connection (up to CONNECTION_WAIT_S) instead of failing with "Too many
        # connections", which redis-py's default pool does at 100.
        pool = BlockingConnectionPool.from_url(
            url, max_connections=MAX_CONNECTIONS, timeout=CONNECTION_WAIT_S
        )
        return cls(Redis.from_pool(pool), key_prefix=key_prefix, clock=clock)

    def keys(self, bucket: str) -> list[str]:
        """The Redis keys holding `bucket`."""
        tagged = f"{self._prefix}{{{bucket}}}"
        return [f"{tagged}:log", f"{tagged}:meta"]

    async def hit(self, bucket: str, limit: int, window_s: float, amount: int = 1) -> Decision:
        check_hit(limit, window_s, amount)
        is_allowed, used, reset_us = await self._call(bucket, window_s, limit, amount)
        return Decision(
            allowed=bool(is_allowed),
            limit=limit,
            remaining=max(0, limit - int(used)),
            reset_after_s=int(reset_us) / 1_000_000,
        )

    async def charge(self, bucket: str, window_s: float, amount: int) -> None:
        check_charge(window_s, amount)
        await self._call(bucket, window_s, -1, amount)

    async def close(self) -> None:
        await self._client.aclose()

    async def _call(self, bucket: str, window_s: float, limit: int, amount: int) -> list[Any]:
        window_us = max(1, round(window_s * 1_000_000))
        now_us = "" if self._clock is None else round(self._clock() * 1_000_000)
        try:
            result: list[Any] = await self._script(
                keys=self.keys(bucket), args=[window_us, limit, amount, now_us]
            )
        except RedisError as error:
            raise RateLimiterUnavailable(f"redis rate limiter: {error}") from error
        return result
