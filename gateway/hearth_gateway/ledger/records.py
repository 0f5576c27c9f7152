"""What the ledger stores and returns: plain, validated values, no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

# Column widths of the usage_records table (migrations/versions/r0001_usage_records.py).
# Checked here so a too-long value fails the same way on SQLite (which would accept it)
# and on PostgreSQL (which would refuse it at insert time).
MAX_LENGTHS: dict[str, int] = {
    "request_id": 255,
    "account": 255,
    "user": 255,
    "key_id": 255,
    "model": 1024,
    "deployment": 1024,
}


@dataclass(frozen=True)
class UsageRecord:
    """One finished request, written once per request id."""

    request_id: str  # unique; a second write of the same id is a no-op (never counted twice)
    time: datetime  # timezone-aware, when the response completed (stored in UTC)
    account: str  # the caller's account (who is billed)
    user: str
    key_id: str
    model: str  # the model name as the client sent it
    deployment: str  # "accounts/<a>/deployments/<d>"
    serverless: bool
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    status: int  # HTTP status returned to the client
    latency_ms: float

    def __post_init__(self) -> None:
        problems = record_problems(self)
        if problems:
            raise ValueError("usage record: " + "; ".join(problems))

    @property
    def day(self) -> date:
        """The UTC calendar day the record is summed into."""
        return self.time.astimezone(UTC).date()


@dataclass(frozen=True)
class UsageTotal:
    """The sum of one account's records for one model on one UTC day."""

    account: str
    model: str
    day: date
    requests: int
    prompt_tokens: int
    completion_tokens: int


def record_problems(record: UsageRecord) -> list[str]:
    """Every reason `record` cannot be stored, each naming its field."""
    problems: list[str] = []
    if not record.request_id:
        problems.append("request_id: must not be empty")
    for field, limit in MAX_LENGTHS.items():
        value: str = getattr(record, field)
        if len(value) > limit:
            problems.append(f"{field}: {len(value)} characters, at most {limit}")
    if record.time.tzinfo is None or record.time.utcoffset() is None:
        problems.append("time: must be timezone-aware (UTC)")
    for field in ("prompt_tokens", "cached_tokens", "completion_tokens"):
        if getattr(record, field) < 0:
            problems.append(f"{field}: must be >= 0, got {getattr(record, field)}")
    if not 100 <= record.status <= 599:
        problems.append(f"status: not an HTTP status code: {record.status}")
    if not record.latency_ms >= 0:  # also refuses NaN
        problems.append(f"latency_ms: must be >= 0, got {record.latency_ms}")
    return problems
