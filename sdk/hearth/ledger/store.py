"""The ledger on a SQL database: SQLite (embedded file) or PostgreSQL (shared).

Async through a synchronous SQLAlchemy engine run in a small pool of worker threads. This
needs no asyncio drivers (aiosqlite, asyncpg) or greenlet: the standard library's sqlite3
and psycopg serve both the queries and Alembic, which is synchronous anyway. A ledger call
is one short statement, so a few threads carry a gateway's write rate.

Usage records are group-committed: the records that arrive while a commit is in flight are
written together by the next one, in one transaction. One request alone still pays one
commit, but 64 finishing together pay a handful instead of 64 (each commit is an fsync and
a round of SQLAlchemy work that competes with the gateway's event loop for the GIL), and
every caller still returns only once its own record is durable.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Engine, Insert, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from hearth.ledger.records import (
    AcceleratorSeconds,
    AcceleratorTotal,
    AccountTokens,
    UsageRecord,
    UsageTotal,
)
from hearth.ledger.schema import AcceleratorSecondsRow, UsageRow

_T = TypeVar("_T")
log = logging.getLogger(__name__)
#: Rows per INSERT statement (SQLite allows at most 32,766 bound values in one).
_BATCH = 500


class LedgerClosedError(RuntimeError):
    """The ledger was used after close()."""


class SqlLedger:
    """`Ledger` on a SQLAlchemy engine whose database is already migrated."""

    def __init__(self, engine: Engine, *, workers: int = 4) -> None:
        self._engine = engine
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ledger")
        self._closed = False
        # Group commit: records waiting for the next commit, and whether a flush runs.
        self._waiting: list[tuple[UsageRecord, Future[None]]] = []
        self._waiting_lock = threading.Lock()
        self._flushing = False
        if engine.dialect.name not in ("sqlite", "postgresql"):
            raise ValueError(f"ledger engine: unsupported dialect {engine.dialect.name!r}")

    @property
    def engine(self) -> Engine:
        return self._engine

    async def record(self, record: UsageRecord) -> None:
        """Stores `record`; committed (durable) when this returns.

        A record whose request_id is already stored is ignored, so retries never count a
        request twice. Cancelling the caller does not cancel the write: it still commits
        (and close() waits for it). Records arriving together share one commit.
        """
        done: Future[None] = Future()
        with self._waiting_lock:
            if self._closed:
                raise LedgerClosedError("the ledger is closed")
            self._waiting.append((record, done))
            if not self._flushing:  # submitted under the lock: close() cannot shut it first
                self._flushing = True
                self._executor.submit(self._flush_sync)
        await asyncio.shield(asyncio.wrap_future(done))

    async def totals(self, account: str, since: datetime, until: datetime) -> list[UsageTotal]:
        """`account`'s records with since <= time < until, summed per model and UTC day,
        ordered by day then model. Every record counts as a request, whatever its status."""
        return await self._run(self._totals_sync, account, since, until)

    async def account_tokens(self, since: datetime, until: datetime) -> list[AccountTokens]:
        """Every account's records with since <= time < until, summed over all models,
        ordered by account (the operator's roll-up into Account status)."""
        return await self._run(self._account_tokens_sync, since, until)

    async def records(self, account: str, since: datetime, until: datetime) -> list[UsageRecord]:
        """`account`'s records with since <= time < until, oldest first."""
        return await self._run(self._records_sync, account, since, until)

    async def record_accelerator_seconds(self, rows: Sequence[AcceleratorSeconds]) -> None:
        """Stores each replica's seconds per hour, in one transaction; committed when this
        returns. A (pod_uid, hour) already stored is replaced, never added to: the seconds
        are recomputed from the pod's timestamps, so writing them again changes nothing."""
        if rows:
            await asyncio.shield(self._submit(self._record_accelerator_sync, list(rows)))

    async def accelerator_rows(self, pod_uids: Collection[str]) -> list[AcceleratorSeconds]:
        """The stored rows of these pods, oldest hour first."""
        return await self._run(self._accelerator_rows_sync, sorted(set(pod_uids)))

    async def accelerator_totals(
        self,
        account: str | None,
        since: datetime,
        until: datetime,
        *,
        per_hour: bool = False,
    ) -> list[AcceleratorTotal]:
        """Accelerator time with since <= hour < until, summed per account, deployment and
        accelerator type (and hour with `per_hour`); `account` None: every account."""
        return await self._run(self._accelerator_totals_sync, account, since, until, per_hour)

    async def close(self) -> None:
        """Waits for writes in flight, then closes the database connections."""
        with self._waiting_lock:
            if self._closed:
                return
            self._closed = True
        await asyncio.to_thread(self._executor.shutdown, wait=True)
        self._engine.dispose()

    async def _run(self, fn: Callable[..., _T], *args: object) -> _T:
        return await self._submit(fn, *args)

    def _submit(self, fn: Callable[..., _T], *args: object) -> asyncio.Future[_T]:
        if self._closed:
            raise LedgerClosedError("the ledger is closed")
        loop = asyncio.get_running_loop()
        return loop.run_in_executor(self._executor, functools.partial(fn, *args))

    def _flush_sync(self) -> None:
        """Writes waiting records until none wait; one runs at a time (``_flushing``)."""
        while True:
            with self._waiting_lock:
                batch, self._waiting = self._waiting, []
                if not batch:
                    self._flushing = False
                    return
            try:
                self._record_sync([record for record, _ in batch])
            except Exception as error:
                if len(batch) == 1:
                    batch[0][1].set_exception(error)
                    continue
                # One record must not fail the others: write them one by one.
                log.warning("group commit of %d usage records failed; writing each", len(batch))
                for record, done in batch:
                    try:
                        self._record_sync([record])
                    except Exception as alone:
                        done.set_exception(alone)
                    else:
                        done.set_result(None)
            else:
                for _, done in batch:
                    done.set_result(None)

    def _record_sync(self, records: list[UsageRecord]) -> None:
        """Inserts ``records`` in one transaction (executemany); stored ids are skipped."""
        rows = [_usage_values(record) for record in records]
        # INSERT ... ON CONFLICT (request_id) DO NOTHING, in each dialect's own construct.
        key = [UsageRow.request_id]
        statement: Insert
        if self._engine.dialect.name == "postgresql":
            statement = postgresql.insert(UsageRow).on_conflict_do_nothing(index_elements=key)
        else:
            statement = sqlite.insert(UsageRow).on_conflict_do_nothing(index_elements=key)
        with self._engine.begin() as connection:
            connection.execute(statement, rows)

    def _totals_sync(self, account: str, since: datetime, until: datetime) -> list[UsageTotal]:
        query = (
            select(
                UsageRow.model,
                UsageRow.day,
                func.count(),
                func.sum(UsageRow.prompt_tokens),
                func.sum(UsageRow.completion_tokens),
            )
            .where(UsageRow.account == account, UsageRow.time >= since, UsageRow.time < until)
            .group_by(UsageRow.model, UsageRow.day)
            .order_by(UsageRow.day, UsageRow.model)
        )
        with self._engine.connect() as connection:
            rows = connection.execute(query).all()
        return [
            UsageTotal(
                account=account,
                model=model,
                day=day,
                requests=int(requests),
                prompt_tokens=int(prompt or 0),
                completion_tokens=int(completion or 0),
            )
            for model, day, requests, prompt, completion in rows
        ]

    def _account_tokens_sync(self, since: datetime, until: datetime) -> list[AccountTokens]:
        query = (
            select(
                UsageRow.account,
                func.count(),
                func.sum(UsageRow.prompt_tokens),
                func.sum(UsageRow.cached_tokens),
                func.sum(UsageRow.completion_tokens),
            )
            .where(UsageRow.time >= since, UsageRow.time < until)
            .group_by(UsageRow.account)
            .order_by(UsageRow.account)
        )
        with self._engine.connect() as connection:
            rows = connection.execute(query).all()
        return [
            AccountTokens(
                account=account,
                requests=int(requests),
                prompt_tokens=int(prompt or 0),
                cached_tokens=int(cached or 0),
                completion_tokens=int(completion or 0),
            )
            for account, requests, prompt, cached, completion in rows
        ]

    def _records_sync(self, account: str, since: datetime, until: datetime) -> list[UsageRecord]:
        query = (
            select(UsageRow)
            .where(UsageRow.account == account, UsageRow.time >= since, UsageRow.time < until)
            .order_by(UsageRow.time, UsageRow.id)
        )
        with Session(self._engine) as session:
            rows = session.scalars(query).all()
        return [
            UsageRecord(
                request_id=row.request_id,
                time=row.time,
                account=row.account,
                user=row.user,
                key_id=row.key_id,
                model=row.model,
                deployment=row.deployment,
                serverless=row.serverless,
                prompt_tokens=row.prompt_tokens,
                cached_tokens=row.cached_tokens,
                completion_tokens=row.completion_tokens,
                status=row.status,
                latency_ms=row.latency_ms,
            )
            for row in rows
        ]

    def _record_accelerator_sync(self, rows: list[AcceleratorSeconds]) -> None:
        key = [AcceleratorSecondsRow.pod_uid, AcceleratorSecondsRow.hour]
        with self._engine.begin() as connection:
            for start in range(0, len(rows), _BATCH):
                values = [_accelerator_values(row) for row in rows[start : start + _BATCH]]
                dialect: Any = postgresql if self._engine.dialect.name == "postgresql" else sqlite
                insert = dialect.insert(AcceleratorSecondsRow).values(values)
                # INSERT ... ON CONFLICT (pod_uid, hour) DO UPDATE: recomputed, not added.
                statement = insert.on_conflict_do_update(
                    index_elements=key,
                    set_={
                        name: insert.excluded[name]
                        for name in (
                            "pod",
                            "account",
                            "deployment",
                            "accelerator_type",
                            "accelerator_count",
                            "replica_seconds",
                            "accelerator_seconds",
                        )
                    },
                )
                connection.execute(statement)

    def _accelerator_rows_sync(self, pod_uids: list[str]) -> list[AcceleratorSeconds]:
        found: list[AcceleratorSeconds] = []
        with Session(self._engine) as session:
            for start in range(0, len(pod_uids), _BATCH):
                query = (
                    select(AcceleratorSecondsRow)
                    .where(AcceleratorSecondsRow.pod_uid.in_(pod_uids[start : start + _BATCH]))
                    .order_by(AcceleratorSecondsRow.hour, AcceleratorSecondsRow.id)
                )
                found += [
                    AcceleratorSeconds(
                        pod_uid=row.pod_uid,
                        pod=row.pod,
                        hour=row.hour,
                        account=row.account,
                        deployment=row.deployment,
                        accelerator_type=row.accelerator_type,
                        accelerator_count=row.accelerator_count,
                        replica_seconds=row.replica_seconds,
                    )
                    for row in session.scalars(query).all()
                ]
        return sorted(found, key=lambda row: (row.hour, row.pod_uid))

    def _accelerator_totals_sync(
        self, account: str | None, since: datetime, until: datetime, per_hour: bool
    ) -> list[AcceleratorTotal]:
        table = AcceleratorSecondsRow
        groups: list[Any] = [table.account, table.deployment, table.accelerator_type]
        if per_hour:
            groups.append(table.hour)
        query = (
            select(*groups, func.sum(table.replica_seconds), func.sum(table.accelerator_seconds))
            .where(table.hour >= since, table.hour < until)
            .group_by(*groups)
            .order_by(*groups)
        )
        if account is not None:
            query = query.where(table.account == account)
        with self._engine.connect() as connection:
            rows = connection.execute(query).all()
        return [
            AcceleratorTotal(
                account=row[0],
                deployment=row[1],
                accelerator_type=row[2],
                hour=row[3] if per_hour else None,
                replica_seconds=float(row[-2] or 0.0),
                accelerator_seconds=float(row[-1] or 0.0),
            )
            for row in rows
        ]


def _accelerator_values(row: AcceleratorSeconds) -> dict[str, Any]:
    return {
        "pod_uid": row.pod_uid,
        "pod": row.pod,
        "hour": row.hour,
        "account": row.account,
        "deployment": row.deployment,
        "accelerator_type": row.accelerator_type,
        "accelerator_count": row.accelerator_count,
        "replica_seconds": row.replica_seconds,
        "accelerator_seconds": row.accelerator_seconds,
    }


def _usage_values(record: UsageRecord) -> dict[str, Any]:
    return {
        "request_id": record.request_id,
        "time": record.time,
        "day": record.day,
        "account": record.account,
        "user": record.user,
        "key_id": record.key_id,
        "model": record.model,
        "deployment": record.deployment,
        "serverless": record.serverless,
        "prompt_tokens": record.prompt_tokens,
        "cached_tokens": record.cached_tokens,
        "completion_tokens": record.completion_tokens,
        "status": record.status,
        "latency_ms": record.latency_ms,
    }
