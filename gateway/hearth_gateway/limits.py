"""Serverless rate limits from the Account quota, on the rate limiter's buckets.

Per caller account: ``rpm:<account>`` counts requests (limit
``quota.serverlessRequestsPerMinute``), ``tpm:<account>`` counts tokens (limit
``quota.serverlessTokensPerMinute``). Before a request the token bucket is only looked at
(the tokens are known after the response) and the request bucket is charged one; after
the response the tokens are charged. Unset limits are unlimited; dedicated deployments
have none (as on Fireworks).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Protocol

WINDOW_S = 60.0


class DecisionLike(Protocol):
    @property
    def allowed(self) -> bool: ...
    @property
    def limit(self) -> int: ...
    @property
    def remaining(self) -> int: ...
    @property
    def reset_after_s(self) -> float: ...


class Limiter(Protocol):
    async def hit(
        self, bucket: str, limit: int, window_s: float, amount: int = 1
    ) -> DecisionLike: ...
    async def charge(self, bucket: str, window_s: float, amount: int) -> None: ...


@dataclass(frozen=True)
class Quota:
    requests_per_minute: int | None
    tokens_per_minute: int | None

    @classmethod
    def of_account(cls, account: dict[str, Any] | None) -> Quota:
        quota = ((account or {}).get("spec") or {}).get("quota") or {}
        rpm, tpm = quota.get("serverlessRequestsPerMinute"), quota.get("serverlessTokensPerMinute")
        return cls(
            rpm if isinstance(rpm, int) else None,
            tpm if isinstance(tpm, int) else None,
        )


@dataclass(frozen=True)
class Admission:
    allowed: bool
    headers: dict[str, str] = field(default_factory=dict)
    message: str = ""


def _retry_after(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))


async def admit(limiter: Limiter, account: str, quota: Quota) -> Admission:
    """Check (and for requests, charge) the account's serverless limits."""
    headers: dict[str, str] = {}
    if quota.tokens_per_minute is not None:
        tokens = await limiter.hit(f"tpm:{account}", quota.tokens_per_minute, WINDOW_S, 0)
        headers["x-ratelimit-limit-tokens"] = str(tokens.limit)
        headers["x-ratelimit-remaining-tokens"] = str(max(tokens.remaining, 0))
        if not tokens.allowed or tokens.remaining <= 0:
            headers["retry-after"] = _retry_after(tokens.reset_after_s)
            if quota.requests_per_minute is not None:  # look, for the headers; charge nothing
                requests = await limiter.hit(
                    f"rpm:{account}", quota.requests_per_minute, WINDOW_S, 0
                )
                headers["x-ratelimit-limit-requests"] = str(requests.limit)
                headers["x-ratelimit-remaining-requests"] = str(max(requests.remaining, 0))
            return Admission(
                False,
                headers,
                f"account {account} is over its serverless limit of "
                f"{quota.tokens_per_minute} tokens per minute",
            )
    if quota.requests_per_minute is not None:
        requests = await limiter.hit(f"rpm:{account}", quota.requests_per_minute, WINDOW_S, 1)
        headers["x-ratelimit-limit-requests"] = str(requests.limit)
        headers["x-ratelimit-remaining-requests"] = str(max(requests.remaining, 0))
        if not requests.allowed:
            headers["retry-after"] = _retry_after(requests.reset_after_s)
            return Admission(
                False,
                headers,
                f"account {account} is over its serverless limit of "
                f"{quota.requests_per_minute} requests per minute",
            )
    return Admission(True, headers)


async def charge_tokens(limiter: Limiter, account: str, quota: Quota, tokens: int) -> None:
    if quota.tokens_per_minute is not None and tokens > 0:
        await limiter.charge(f"tpm:{account}", WINDOW_S, tokens)
