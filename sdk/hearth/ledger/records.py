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


@dataclass(frozen=True)
class AccountTokens:
    """The sum of one account's records (every model) within a time range."""

    account: str
    requests: int
    prompt_tokens: int
    cached_tokens: int
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


# Column widths of the accelerator_seconds table (r0002_accelerator_seconds.py).
ACCELERATOR_MAX_LENGTHS: dict[str, int] = {
    "pod_uid": 255,
    "pod": 255,
    "account": 255,
    "deployment": 1024,
    "accelerator_type": 64,
}
HOUR_SECONDS = 3600.0


@dataclass(frozen=True)
class AcceleratorSeconds:
    """One replica's time within one UTC hour, from the operator's pod timestamps.

    Stored once per (pod_uid, hour): writing the same pod and hour again replaces the
    seconds (they are recomputed from the pod's timestamps, never added up), so a second
    operator, a restart or a repeated pass never counts a replica twice.
    """

    pod_uid: str  # metadata.uid of the replica's pod
    pod: str  # its name, for people reading the table
    hour: datetime  # timezone-aware start of the UTC hour (minutes, seconds zero)
    account: str  # the Deployment's account (who is billed)
    deployment: str  # "accounts/<a>/deployments/<d>"
    accelerator_type: str  # e.g. NVIDIA_H100_80GB; CPU for CPU replicas
    accelerator_count: int  # accelerators per replica (0 for CPU)
    replica_seconds: float  # seconds the replica held its accelerators within the hour

    def __post_init__(self) -> None:
        problems = accelerator_problems(self)
        if problems:
            raise ValueError("accelerator seconds: " + "; ".join(problems))

    @property
    def accelerator_seconds(self) -> float:
        """GPU-seconds: replica seconds x accelerators; a CPU replica counts as one."""
        return self.replica_seconds * max(self.accelerator_count, 1)


@dataclass(frozen=True)
class AcceleratorTotal:
    """Summed accelerator time of one deployment and accelerator type (and hour, when
    asked per hour) within a time range."""

    account: str
    deployment: str
    accelerator_type: str
    hour: datetime | None  # None: summed over the whole range
    replica_seconds: float
    accelerator_seconds: float


def accelerator_problems(row: AcceleratorSeconds) -> list[str]:
    """Every reason `row` cannot be stored, each naming its field."""
    problems: list[str] = []
    for field, limit in ACCELERATOR_MAX_LENGTHS.items():
        value: str = getattr(row, field)
        if not value:
            problems.append(f"{field}: must not be empty")
        elif len(value) > limit:
            problems.append(f"{field}: {len(value)} characters, at most {limit}")
    if row.hour.tzinfo is None or row.hour.utcoffset() is None:
        problems.append("hour: must be timezone-aware (UTC)")
    elif row.hour.astimezone(UTC) != hour_of(row.hour):
        problems.append(f"hour: {row.hour.isoformat()} is not the start of a UTC hour")
    if row.accelerator_count < 0:
        problems.append(f"accelerator_count: must be >= 0, got {row.accelerator_count}")
    if not 0 <= row.replica_seconds <= HOUR_SECONDS:  # also refuses NaN
        problems.append(f"replica_seconds: must be within [0, 3600], got {row.replica_seconds}")
    return problems


def hour_of(time: datetime) -> datetime:
    """The start of the UTC hour `time` falls in."""
    return time.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
