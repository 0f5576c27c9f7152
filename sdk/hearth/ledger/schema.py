"""The ledger's tables (usage_records, accelerator_seconds) as typed SQLAlchemy models.

The migrations (migrations/versions/) create the table; this module describes it to the
queries. A test checks that the two agree.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Dialect,
    Float,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from hearth.ledger.records import ACCELERATOR_MAX_LENGTHS, MAX_LENGTHS


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware datetime stored in UTC, read back aware on every dialect.

    PostgreSQL keeps `timestamptz`; SQLite has no time zones, so the UTC value is stored
    naive and the zone is put back on read. Naive datetimes are refused on write.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()}: the ledger stores UTC times")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


class UsageRow(Base):
    __tablename__ = "usage_records"
    __table_args__ = (
        UniqueConstraint("request_id", name="uq_usage_records_request_id"),
        Index("ix_usage_records_account_day", "account", "day"),
    )

    # SQLite only auto-increments an INTEGER PRIMARY KEY.
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    request_id: Mapped[str] = mapped_column(String(MAX_LENGTHS["request_id"]))
    time: Mapped[datetime] = mapped_column(UTCDateTime())
    # The UTC day of `time`, stored so that totals group by a plain column on every dialect.
    day: Mapped[date] = mapped_column(Date())
    account: Mapped[str] = mapped_column(String(MAX_LENGTHS["account"]))
    user: Mapped[str] = mapped_column(String(MAX_LENGTHS["user"]))
    key_id: Mapped[str] = mapped_column(String(MAX_LENGTHS["key_id"]))
    model: Mapped[str] = mapped_column(String(MAX_LENGTHS["model"]))
    deployment: Mapped[str] = mapped_column(String(MAX_LENGTHS["deployment"]))
    serverless: Mapped[bool] = mapped_column(Boolean())
    prompt_tokens: Mapped[int] = mapped_column(Integer())
    cached_tokens: Mapped[int] = mapped_column(Integer())
    completion_tokens: Mapped[int] = mapped_column(Integer())
    status: Mapped[int] = mapped_column(Integer())
    latency_ms: Mapped[float] = mapped_column(Float())


class AcceleratorSecondsRow(Base):
    """One replica's time within one UTC hour (written by the operator)."""

    __tablename__ = "accelerator_seconds"
    __table_args__ = (
        UniqueConstraint("pod_uid", "hour", name="uq_accelerator_seconds_pod_hour"),
        Index("ix_accelerator_seconds_account_hour", "account", "hour"),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    pod_uid: Mapped[str] = mapped_column(String(ACCELERATOR_MAX_LENGTHS["pod_uid"]))
    pod: Mapped[str] = mapped_column(String(ACCELERATOR_MAX_LENGTHS["pod"]))
    hour: Mapped[datetime] = mapped_column(UTCDateTime())
    account: Mapped[str] = mapped_column(String(ACCELERATOR_MAX_LENGTHS["account"]))
    deployment: Mapped[str] = mapped_column(String(ACCELERATOR_MAX_LENGTHS["deployment"]))
    accelerator_type: Mapped[str] = mapped_column(
        String(ACCELERATOR_MAX_LENGTHS["accelerator_type"])
    )
    accelerator_count: Mapped[int] = mapped_column(Integer())
    replica_seconds: Mapped[float] = mapped_column(Float())
    # replica_seconds x accelerator_count (x 1 for CPU), stored so sums are plain sums.
    accelerator_seconds: Mapped[float] = mapped_column(Float())
