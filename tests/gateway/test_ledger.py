"""The usage ledger against SQLite (always) and a real PostgreSQL (127.0.0.1:5432, db `test`).

Each PostgreSQL test runs in a schema of its own (search_path in the URL), dropped after it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, event, func, select, text

from hearth.ledger import AccountTokens
from hearth.ledger.engine import create_ledger_engine, ledger_url
from hearth.ledger.migrate import alembic_config
from hearth.ledger.schema import Base, UsageRow
from hearth_gateway.ledger import (
    LedgerClosedError,
    SqlLedger,
    UsageRecord,
    UsageTotal,
    open_ledger,
)

REPO = Path(__file__).resolve().parents[2]
POSTGRES_URL = os.environ.get("HEARTH_TEST_POSTGRES_URL", "postgresql://127.0.0.1:5432/test")
T0 = datetime(2026, 3, 1, 23, 30, tzinfo=UTC)
WIDE = (T0 - timedelta(days=30), T0 + timedelta(days=30))


def usage(request_id: str, **fields: object) -> UsageRecord:
    values: dict[str, object] = {
        "request_id": request_id,
        "time": T0,
        "account": "acme",
        "user": "alice",
        "key_id": "key1",
        "model": "accounts/hearth/models/smollm2",
        "deployment": "accounts/hearth/deployments/smol",
        "serverless": True,
        "prompt_tokens": 10,
        "cached_tokens": 4,
        "completion_tokens": 5,
        "status": 200,
        "latency_ms": 12.5,
    }
    values.update(fields)
    return UsageRecord(**values)  # type: ignore[arg-type]


def _postgres_unreachable() -> str | None:
    try:
        with psycopg.connect(POSTGRES_URL, connect_timeout=3):
            return None
    except psycopg.OperationalError as error:
        return f"PostgreSQL not reachable at {POSTGRES_URL}: {error}".strip()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A PostgreSQL ledger URL whose tables live in a fresh schema, dropped afterwards."""
    reason = _postgres_unreachable()
    if reason:
        pytest.skip(reason)
    schema = f"ledger_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
        connection.execute(f'CREATE SCHEMA "{schema}"')
    try:
        separator = "&" if "?" in POSTGRES_URL else "?"
        yield f"{POSTGRES_URL}{separator}options={quote(f'-csearch_path={schema}')}"
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


def stored_request_ids(url: str) -> list[str]:
    """Every request_id in the ledger's table, duplicates included (read with a plain engine)."""
    engine = create_engine(ledger_url(url))
    try:
        with engine.connect() as connection:
            return list(connection.execute(select(UsageRow.request_id)).scalars())
    finally:
        engine.dispose()


# -- values and URLs ------------------------------------------------------------------------


def test_record_refuses_invalid_fields_by_name() -> None:
    with pytest.raises(ValueError, match="time: must be timezone-aware"):
        usage("r", time=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match=r"prompt_tokens: must be >= 0.*latency_ms"):
        usage("r", prompt_tokens=-1, latency_ms=float("nan"))
    with pytest.raises(ValueError, match="request_id: must not be empty"):
        usage("")
    with pytest.raises(ValueError, match="model: 1025 characters, at most 1024"):
        usage("r", model="m" * 1025)
    with pytest.raises(ValueError, match="status: not an HTTP status code: 42"):
        usage("r", status=42)


def test_record_day_is_the_utc_day() -> None:
    east = timezone(timedelta(hours=5))
    assert usage("r", time=datetime(2026, 3, 2, 2, 0, tzinfo=east)).day == date(2026, 3, 1)


def test_ledger_url_forms() -> None:
    default = ledger_url(None, environ={})
    assert (default.drivername, default.database) == ("sqlite+pysqlite", "hearth-ledger.sqlite3")
    from_env = ledger_url(None, environ={"HEARTH_GATEWAY_LEDGER_PATH": "/data/l.db"})
    assert from_env.database == "/data/l.db"
    for scheme in ("postgresql", "postgres", "postgresql+psycopg"):
        url = ledger_url(f"{scheme}://u@db:5432/usage")
        assert (url.drivername, url.host, url.database) == ("postgresql+psycopg", "db", "usage")
    assert ledger_url("sqlite:////var/l.db").database == "/var/l.db"
    with pytest.raises(ValueError, match="unsupported scheme 'mysql'"):
        ledger_url("mysql://db/usage")
    with pytest.raises(ValueError, match="needs a file path"):
        ledger_url("sqlite://")


# -- behaviour on both stores ---------------------------------------------------------------


@pytest.mark.asyncio
async def test_round_trip(store_url: str) -> None:
    ledger = open_ledger(store_url)
    try:
        east = timezone(timedelta(hours=2))
        first = usage("r1", time=datetime(2026, 3, 2, 1, 0, 0, 123456, tzinfo=east))
        second = usage("r2", serverless=False, status=500, latency_ms=0.25, completion_tokens=0)
        await ledger.record(first)
        await ledger.record(second)
        stored = await ledger.records("acme", *WIDE)
    finally:
        await ledger.close()
    # Times come back in UTC, the same instant to the microsecond.
    assert stored == [first, second]
    assert [r.time.tzinfo for r in stored] == [UTC, UTC]
    assert stored[0].time == datetime(2026, 3, 1, 23, 0, 0, 123456, tzinfo=UTC)


@pytest.mark.asyncio
async def test_duplicate_request_id_is_counted_once(store_url: str) -> None:
    ledger = open_ledger(store_url)
    try:
        await ledger.record(usage("dup", prompt_tokens=7))
        await ledger.record(usage("dup", prompt_tokens=7))
        # A replay with other numbers does not replace the first write either.
        await ledger.record(usage("dup", prompt_tokens=1000))
        await asyncio.gather(*(ledger.record(usage("dup")) for _ in range(8)))
        totals = await ledger.totals("acme", *WIDE)
    finally:
        await ledger.close()
    assert stored_request_ids(store_url) == ["dup"]
    assert totals == [UsageTotal("acme", "accounts/hearth/models/smollm2", T0.date(), 1, 7, 5)]


@pytest.mark.asyncio
async def test_totals_per_day_and_model(store_url: str) -> None:
    day1, day2 = T0.date(), T0.date() + timedelta(days=1)
    plus9 = timezone(timedelta(hours=9))
    records = [
        usage("a", model="m1", prompt_tokens=1, completion_tokens=10),
        usage(
            "b", model="m1", prompt_tokens=2, completion_tokens=20, time=T0 + timedelta(minutes=29)
        ),
        usage("c", model="m2", prompt_tokens=4, completion_tokens=40),
        # 08:30 in UTC+9 on March 2nd is 23:30 UTC on March 1st: day1.
        usage("d", model="m2", prompt_tokens=8, completion_tokens=80, time=T0.astimezone(plus9)),
        # 31 minutes after T0 is past midnight UTC: day2.
        usage(
            "e",
            model="m1",
            prompt_tokens=16,
            completion_tokens=160,
            time=T0 + timedelta(minutes=31),
        ),
        usage("f", model="m1", account="other", prompt_tokens=32, completion_tokens=320),
    ]
    ledger = open_ledger(store_url)
    try:
        for record in records:
            await ledger.record(record)
        totals = await ledger.totals("acme", *WIDE)
        # since is inclusive and until exclusive.
        window = await ledger.totals("acme", T0, T0 + timedelta(minutes=29))
        other = await ledger.totals("other", *WIDE)
        nobody = await ledger.totals("nobody", *WIDE)
    finally:
        await ledger.close()
    assert totals == [
        UsageTotal("acme", "m1", day1, 2, 3, 30),
        UsageTotal("acme", "m2", day1, 2, 12, 120),
        UsageTotal("acme", "m1", day2, 1, 16, 160),
    ]
    assert window == [
        UsageTotal("acme", "m1", day1, 1, 1, 10),
        UsageTotal("acme", "m2", day1, 2, 12, 120),
    ]
    assert other == [UsageTotal("other", "m1", day1, 1, 32, 320)]
    assert nobody == []


@pytest.mark.asyncio
async def test_account_tokens_sum_every_model_per_account(store_url: str) -> None:
    records = [
        usage("a", model="m1", prompt_tokens=1, cached_tokens=0, completion_tokens=10),
        usage("b", model="m2", prompt_tokens=2, cached_tokens=2, completion_tokens=20),
        usage("c", account="other", prompt_tokens=4, cached_tokens=1, completion_tokens=40),
        # Outside the window (until is exclusive): not counted.
        usage("d", time=T0 + timedelta(hours=1), prompt_tokens=8, completion_tokens=80),
    ]
    ledger = open_ledger(store_url)
    try:
        for record in records:
            await ledger.record(record)
        sums = await ledger.account_tokens(T0, T0 + timedelta(hours=1))
    finally:
        await ledger.close()
    assert sums == [
        AccountTokens("acme", requests=2, prompt_tokens=3, cached_tokens=2, completion_tokens=30),
        AccountTokens("other", requests=1, prompt_tokens=4, cached_tokens=1, completion_tokens=40),
    ]


@pytest.mark.asyncio
async def test_records_finishing_together_share_commits(store_url: str) -> None:
    ledger = open_ledger(store_url)
    commits: list[int] = []
    event.listen(ledger.engine, "commit", lambda _connection: commits.append(1))
    try:
        await asyncio.gather(*(ledger.record(usage(f"r{i}")) for i in range(64)))
        await ledger.record(usage("r0"))  # a repeat, alone in its commit
    finally:
        await ledger.close()
    assert sorted(stored_request_ids(store_url)) == sorted(f"r{i}" for i in range(64))
    # Each commit carried many records (one alone would take 64 commits, plus the repeat).
    assert len(commits) <= 33


@pytest.mark.asyncio
async def test_a_failing_record_in_a_group_fails_alone(tmp_path: Path) -> None:
    class Poisoned(SqlLedger):
        def _record_sync(self, records: list[UsageRecord]) -> None:
            if any(r.request_id == "poison" for r in records):
                raise RuntimeError("the database refused this row")
            super()._record_sync(records)

    url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    await open_ledger(url, workers=1).close()  # creates and migrates the file
    ledger = Poisoned(create_ledger_engine(ledger_url(url), pool_size=1), workers=1)
    try:
        ids = ["poison", *(f"ok{i}" for i in range(20))]
        results = await asyncio.gather(
            *(ledger.record(usage(i)) for i in ids), return_exceptions=True
        )
    finally:
        await ledger.close()
    failed = [i for i, r in zip(ids, results, strict=True) if isinstance(r, Exception)]
    assert failed == ["poison"]
    assert sorted(stored_request_ids(url)) == sorted(ids[1:])


@pytest.mark.asyncio
async def test_reopen_keeps_records_and_migrations_are_idempotent(store_url: str) -> None:
    first = open_ledger(store_url)
    await first.record(usage("kept"))
    await first.close()
    for _ in range(2):
        again = open_ledger(store_url)
        await again.record(usage("kept"))
        assert [r.request_id for r in await again.records("acme", *WIDE)] == ["kept"]
        await again.close()
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    engine = create_engine(ledger_url(store_url))
    try:
        with engine.connect() as connection:
            versions = connection.execute(text("SELECT version_num FROM alembic_version")).all()
            # The migrations create exactly what the typed models describe.
            drift = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    finally:
        engine.dispose()
    assert versions == [(head,)]
    assert drift == []


@pytest.mark.asyncio
async def test_two_ledgers_on_one_store_write_concurrently(store_url: str) -> None:
    # Both open a fresh store at the same time: the migration runs once, neither fails.
    opened: list[SqlLedger] = []
    errors: list[BaseException] = []

    def open_one() -> None:
        try:
            opened.append(open_ledger(store_url))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=open_one) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    one, two = opened
    try:
        # Overlapping ids (every third is written by both) from interleaved writers.
        ids_one = [f"w{i}" for i in range(60) if i % 3 != 1]
        ids_two = [f"w{i}" for i in range(60) if i % 3 != 2]
        await asyncio.gather(
            *(one.record(usage(i)) for i in ids_one), *(two.record(usage(i)) for i in ids_two)
        )
        totals = await one.totals("acme", *WIDE)
    finally:
        await one.close()
        await two.close()
    assert sorted(stored_request_ids(store_url)) == sorted(f"w{i}" for i in range(60))
    assert totals[0].requests == 60


@pytest.mark.asyncio
async def test_cancelled_callers_do_not_cancel_their_writes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'l.sqlite3'}"
    ledger = open_ledger(url, workers=1)  # one thread: most writes wait in its queue
    tasks = [asyncio.create_task(ledger.record(usage(f"c{n:02}"))) for n in range(20)]
    await asyncio.sleep(0)  # every task has handed its write over
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await ledger.close()  # waits for the writes in flight
    assert sorted(stored_request_ids(url)) == [f"c{n:02}" for n in range(20)]


@pytest.mark.asyncio
async def test_closed_ledger_refuses_calls(tmp_path: Path) -> None:
    ledger = open_ledger(f"sqlite:///{tmp_path / 'l.sqlite3'}")
    await ledger.close()
    await ledger.close()  # a second close is harmless
    with pytest.raises(LedgerClosedError):
        await ledger.record(usage("late"))


@pytest.mark.asyncio
async def test_default_store_is_a_wal_sqlite_file_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    ledger = open_ledger(None, environ={})
    try:
        await ledger.record(usage("r"))
        with ledger.engine.connect() as connection:
            journal = connection.exec_driver_sql("PRAGMA journal_mode").scalar()
            synchronous = connection.exec_driver_sql("PRAGMA synchronous").scalar()
    finally:
        await ledger.close()
    assert (tmp_path / "hearth-ledger.sqlite3").is_file()
    assert (journal, synchronous) == ("wal", 2)  # 2 = FULL
    assert stored_request_ids(f"sqlite:///{tmp_path / 'hearth-ledger.sqlite3'}") == ["r"]


@pytest.mark.asyncio
async def test_path_from_environment(tmp_path: Path) -> None:
    path = tmp_path / "volume" / "usage.sqlite3"
    ledger = open_ledger(None, environ={"HEARTH_GATEWAY_LEDGER_PATH": str(path)})
    await ledger.record(usage("r"))
    await ledger.close()
    assert stored_request_ids(f"sqlite:///{path}") == ["r"]


# -- a killed writer ------------------------------------------------------------------------


def crash_writer(url: str, writers: int) -> None:
    """Child process: `writers` tasks record ids w<task>-<n> forever, printing each id once
    its record() has returned. The parent SIGKILLs it."""

    async def write(ledger: SqlLedger, task: int) -> None:
        for n in range(1_000_000):
            request_id = f"w{task}-{n}"
            await ledger.record(usage(request_id, time=T0 + timedelta(microseconds=n)))
            print(request_id, flush=True)

    async def main() -> None:
        ledger = open_ledger(url)
        await asyncio.gather(*(write(ledger, task) for task in range(writers)))

    asyncio.run(main())


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_killed_writer_loses_no_returned_record_and_counts_none_twice(store_url: str) -> None:
    writers = 4
    # The store exists before the child starts, so the kill lands among writes.
    asyncio.run(open_ledger(store_url).close())
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from tests.gateway.test_ledger import crash_writer; "
            "crash_writer(sys.argv[1], int(sys.argv[2]))",
            store_url,
            str(writers),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    returned: list[str] = []
    try:
        while len(returned) < 200:
            line = child.stdout.readline()
            if not line:
                _, stderr = child.communicate(timeout=30)
                pytest.fail(f"writer ended early (rc {child.returncode}):\n{stderr}")
            returned.append(line.strip())
    finally:
        child.send_signal(signal.SIGKILL)
        rest, _ = child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL
    returned += rest.split()

    stored = stored_request_ids(store_url)
    assert len(stored) == len(set(stored))
    # Every record whose record() returned is there ...
    assert set(returned) <= set(stored)
    # ... and beyond those, at most the one write each writer had in flight.
    unconfirmed = set(stored) - set(returned)
    assert len(unconfirmed) <= writers, unconfirmed

    # A restarted gateway replaying everything (e.g. a retry after the crash) adds none twice.
    async def replay_all() -> list[UsageTotal]:
        replay = open_ledger(store_url)
        try:
            for request_id in sorted(stored):
                n = int(request_id.partition("-")[2])
                await replay.record(usage(request_id, time=T0 + timedelta(microseconds=n)))
            return await replay.totals("acme", *WIDE)
        finally:
            await replay.close()

    totals = asyncio.run(replay_all())
    assert sorted(stored_request_ids(store_url)) == sorted(stored)
    assert sum(t.requests for t in totals) == len(stored)


def test_stored_ids_helper_sees_duplicates(tmp_path: Path) -> None:
    """stored_request_ids reads raw rows, so the exactly-once assertions above can fail."""
    url = f"sqlite:///{tmp_path / 'raw.sqlite3'}"
    engine = create_engine(ledger_url(url))
    try:
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE usage_records (request_id TEXT)"))
            connection.execute(text("INSERT INTO usage_records VALUES ('x'), ('x')"))
            assert connection.execute(select(func.count()).select_from(UsageRow)).scalar() == 2
    finally:
        engine.dispose()
    assert stored_request_ids(url) == ["x", "x"]
