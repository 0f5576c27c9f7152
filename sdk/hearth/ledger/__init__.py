"""The usage ledger, shared by the gateway and the operator.

The gateway writes one durable record per finished request (`UsageRecord`); the operator
writes each dedicated replica's time per UTC hour (`AcceleratorSeconds`: GPU-seconds, or
replica-seconds for CPU), recomputed from pod timestamps and replaced on every write.

`open_ledger(None)` stores in an embedded SQLite file ($HEARTH_GATEWAY_LEDGER_PATH, default
./hearth-ledger.sqlite3); `open_ledger("postgresql://...")` in PostgreSQL, so several
gateway replicas share one ledger. Migrations (Alembic, migrations/) are applied on open.
The ledger is storage only: metrics and the Account status roll-up live elsewhere.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Protocol

from hearth.ledger.engine import DEFAULT_PATH, PATH_ENV, create_ledger_engine, ledger_url
from hearth.ledger.migrate import upgrade
from hearth.ledger.records import (
    AcceleratorSeconds,
    AcceleratorTotal,
    AccountTokens,
    UsageRecord,
    UsageTotal,
)
from hearth.ledger.store import LedgerClosedError, SqlLedger

__all__ = [
    "DEFAULT_PATH",
    "PATH_ENV",
    "AcceleratorLedger",
    "AcceleratorSeconds",
    "AcceleratorTotal",
    "AccountTokens",
    "Ledger",
    "LedgerClosedError",
    "SqlLedger",
    "UsageRecord",
    "UsageTotal",
    "open_ledger",
]


class Ledger(Protocol):
    async def record(self, record: UsageRecord) -> None:
        """Stores `record`, durable when this returns; a repeated request_id is a no-op."""
        ...

    async def totals(self, account: str, since: datetime, until: datetime) -> list[UsageTotal]:
        """`account`'s usage with since <= time < until, per model and UTC day."""
        ...

    async def accelerator_totals(
        self, account: str | None, since: datetime, until: datetime, *, per_hour: bool = False
    ) -> list[AcceleratorTotal]:
        """The operator's metered accelerator time (see `AcceleratorLedger`), for reports."""
        ...

    async def close(self) -> None: ...


class AcceleratorLedger(Protocol):
    """What the operator's metering needs of the ledger."""

    async def record_accelerator_seconds(self, rows: Sequence[AcceleratorSeconds]) -> None:
        """Stores the rows, durable when this returns; a (pod_uid, hour) is replaced."""
        ...

    async def accelerator_rows(self, pod_uids: Collection[str]) -> list[AcceleratorSeconds]:
        """The rows stored for these pods."""
        ...

    async def accelerator_totals(
        self, account: str | None, since: datetime, until: datetime, *, per_hour: bool = False
    ) -> list[AcceleratorTotal]:
        """Sums with since <= hour < until per account, deployment, accelerator type."""
        ...

    async def account_tokens(self, since: datetime, until: datetime) -> list[AccountTokens]:
        """The gateway's request records with since <= time < until, summed per account."""
        ...

    async def close(self) -> None: ...


def open_ledger(
    url: str | None, *, workers: int = 4, environ: Mapping[str, str] = os.environ
) -> SqlLedger:
    """Opens (creating and migrating when needed) the ledger that `url` names.

    Blocking: it connects and runs the migrations before returning. Raises ValueError for a
    URL it does not support, and SQLAlchemy's errors when the database is unreachable.
    """
    engine = create_ledger_engine(ledger_url(url, environ), pool_size=workers)
    try:
        upgrade(engine)
    except BaseException:
        engine.dispose()
        raise
    return SqlLedger(engine, workers=workers)
