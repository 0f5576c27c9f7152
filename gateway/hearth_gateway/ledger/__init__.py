"""The usage ledger: one durable record per finished request, summed per account.

`open_ledger(None)` stores in an embedded SQLite file ($HEARTH_GATEWAY_LEDGER_PATH, default
./hearth-ledger.sqlite3); `open_ledger("postgresql://...")` in PostgreSQL, so several
gateway replicas share one ledger. Migrations (Alembic, migrations/) are applied on open.
The ledger is storage only: metrics and the Account status roll-up live elsewhere.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime
from typing import Protocol

from hearth_gateway.ledger.engine import DEFAULT_PATH, PATH_ENV, create_ledger_engine, ledger_url
from hearth_gateway.ledger.migrate import upgrade
from hearth_gateway.ledger.records import UsageRecord, UsageTotal
from hearth_gateway.ledger.store import LedgerClosedError, SqlLedger

__all__ = [
    "DEFAULT_PATH",
    "PATH_ENV",
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
