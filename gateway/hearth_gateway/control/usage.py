"""``GET /v1/accounts/{account}/usage`` (a Hearth extension): the usage ledger's sums.

Tokens per model and UTC day (every request the gateway answered) and accelerator time
per deployment, accelerator type and UTC day (what the operator metered), for a period
given as ``startTime`` <= t < ``endTime`` (RFC 3339; by default the current UTC month).
Readable by every role of the account (the 'view' permission).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Protocol

from hearth.ledger import AcceleratorTotal, UsageTotal

from ..auth import Principal
from .authz import Action, authorize_resource
from .common import Json
from .errors import invalid


class UsageLedger(Protocol):
    async def totals(self, account: str, since: datetime, until: datetime) -> list[UsageTotal]: ...

    async def accelerator_totals(
        self, account: str | None, since: datetime, until: datetime, *, per_hour: bool = False
    ) -> list[AcceleratorTotal]: ...


def parse_time(name: str, value: str) -> datetime:
    """An RFC 3339 timestamp with its offset, in UTC; a 400 naming ``name`` otherwise."""
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise invalid(
            f"{name}: not an RFC 3339 timestamp (e.g. 2026-01-01T00:00:00Z): {value!r}"
        ) from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise invalid(f"{name}: needs a time zone offset (Z or +hh:mm): {value!r}")
    return parsed.astimezone(UTC)


def month_of(now: datetime) -> tuple[datetime, datetime]:
    """The UTC calendar month ``now`` falls in, as [start, end)."""
    start = now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    if start.month == 12:
        return start, start.replace(year=start.year + 1, month=1)
    return start, start.replace(month=start.month + 1)


def period(query: Mapping[str, str], now: datetime) -> tuple[datetime, datetime]:
    """[startTime, endTime) from the query; each missing end from the current UTC month."""
    default_start, default_end = month_of(now)
    raw_start, raw_end = query.get("startTime"), query.get("endTime")
    start = parse_time("startTime", raw_start) if raw_start else default_start
    end = parse_time("endTime", raw_end) if raw_end else default_end
    if end <= start:
        raise invalid(f"endTime: {end.isoformat()} is not after startTime {start.isoformat()}")
    return start, end


def _rfc3339(time: datetime) -> str:
    return time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def token_rows(totals: list[UsageTotal]) -> list[Json]:
    return [
        {
            "model": t.model,
            "day": t.day.isoformat(),
            "requests": t.requests,
            "promptTokens": t.prompt_tokens,
            "completionTokens": t.completion_tokens,
        }
        for t in totals
    ]


def accelerator_rows(totals: list[AcceleratorTotal]) -> list[Json]:
    """Per-hour totals summed per UTC day, deployment and accelerator type; ordered by
    day, deployment, type."""
    sums: dict[tuple[date, str, str], tuple[float, float]] = {}
    for t in totals:
        if t.hour is None:
            raise ValueError("accelerator totals must be per hour")
        key = (t.hour.astimezone(UTC).date(), t.deployment, t.accelerator_type)
        gpu, replica = sums.get(key, (0.0, 0.0))
        sums[key] = (gpu + t.accelerator_seconds, replica + t.replica_seconds)
    return [
        {
            "deployment": deployment,
            "acceleratorType": accelerator_type,
            "day": day.isoformat(),
            "gpuSeconds": round(gpu, 3),
            "replicaSeconds": round(replica, 3),
        }
        for (day, deployment, accelerator_type), (gpu, replica) in sorted(sums.items())
    ]


async def account_usage(
    ledger: UsageLedger,
    principal: Principal,
    account: str,
    query: Mapping[str, str],
    now: datetime,
) -> Json:
    authorize_resource(principal, account, Action.READ)
    start, end = period(query, now)
    tokens = await ledger.totals(account, start, end)
    accelerators = await ledger.accelerator_totals(account, start, end, per_hour=True)
    return {
        "startTime": _rfc3339(start),
        "endTime": _rfc3339(end),
        "tokens": token_rows(tokens),
        "acceleratorSeconds": accelerator_rows(accelerators),
    }
