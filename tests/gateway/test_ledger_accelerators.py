"""The ledger's accelerator_seconds table (GPU-seconds the operator writes), on SQLite and a
real PostgreSQL (the fixtures of test_ledger.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import create_engine, text

from hearth.ledger import AcceleratorSeconds, AcceleratorTotal, open_ledger
from hearth.ledger.engine import create_ledger_engine, ledger_url
from hearth.ledger.migrate import alembic_config
from hearth.ledger.records import hour_of
from tests.gateway import test_ledger

# The ledger suite's fixtures: SQLite, and PostgreSQL in a schema of its own.
postgres_url = test_ledger.postgres_url
store_url = test_ledger.store_url

H0 = datetime(2026, 3, 1, 22, tzinfo=UTC)
H1 = H0 + timedelta(hours=1)
WIDE = (H0 - timedelta(days=31), H0 + timedelta(days=31))


def seconds(pod_uid: str, hour: datetime, replica_seconds: float, **fields: object):
    values: dict[str, object] = {
        "pod_uid": pod_uid,
        "pod": f"pod-{pod_uid}",
        "hour": hour,
        "account": "acme",
        "deployment": "accounts/acme/deployments/big",
        "accelerator_type": "NVIDIA_H100_80GB",
        "accelerator_count": 2,
        "replica_seconds": replica_seconds,
    }
    values.update(fields)
    return AcceleratorSeconds(**values)  # type: ignore[arg-type]


def test_rows_refuse_invalid_fields_by_name() -> None:
    with pytest.raises(ValueError) as caught:
        seconds(
            "",
            H0.replace(minute=5, tzinfo=UTC),
            3601.0,
            accelerator_count=-1,
            accelerator_type="X" * 65,
        )
    message = str(caught.value)
    for field in ("pod_uid", "hour", "accelerator_count", "replica_seconds", "accelerator_type"):
        assert f"{field}:" in message
    with pytest.raises(ValueError, match="hour: must be timezone-aware"):
        seconds("u", H0.replace(tzinfo=None), 1.0)
    with pytest.raises(ValueError, match="replica_seconds"):
        seconds("u", H0, float("nan"))


def test_accelerator_seconds_are_replica_seconds_times_accelerators_and_cpu_counts_one() -> None:
    assert seconds("u", H0, 10.0).accelerator_seconds == 20.0
    cpu = seconds("u", H0, 10.0, accelerator_type="CPU", accelerator_count=0)
    assert cpu.accelerator_seconds == 10.0


def test_hour_of_is_the_utc_hour() -> None:
    local = datetime(2026, 3, 2, 0, 30, tzinfo=UTC).astimezone(timezone(timedelta(hours=5)))
    assert hour_of(local) == datetime(2026, 3, 2, 0, tzinfo=UTC)


@pytest.mark.asyncio
async def test_a_pod_hour_written_again_is_replaced_not_added(store_url: str) -> None:
    ledger = open_ledger(store_url)
    try:
        await ledger.record_accelerator_seconds([seconds("a", H0, 10.0)])
        await ledger.record_accelerator_seconds([seconds("a", H0, 25.0)])
        await ledger.record_accelerator_seconds([seconds("a", H0, 25.0)])
        rows = await ledger.accelerator_rows(["a", "missing"])
        assert [(r.pod_uid, r.hour, r.replica_seconds) for r in rows] == [("a", H0, 25.0)]
        totals = await ledger.accelerator_totals("acme", *WIDE)
        assert [(t.replica_seconds, t.accelerator_seconds) for t in totals] == [(25.0, 50.0)]
    finally:
        await ledger.close()


@pytest.mark.asyncio
async def test_totals_per_deployment_type_and_hour(store_url: str) -> None:
    cpu = {"accelerator_type": "CPU", "accelerator_count": 0}
    other = {"account": "other", "deployment": "accounts/other/deployments/d"}
    ledger = open_ledger(store_url)
    try:
        await ledger.record_accelerator_seconds(
            [
                seconds("a", H0, 3600.0),
                seconds("a", H1, 100.0),
                seconds("b", H1, 50.0),
                seconds("c", H1, 30.0, deployment="accounts/acme/deployments/small", **cpu),
                seconds("d", H1, 99.0, **other),
            ]
        )
        big, small = "accounts/acme/deployments/big", "accounts/acme/deployments/small"
        assert await ledger.accelerator_totals("acme", *WIDE) == [
            AcceleratorTotal("acme", big, "NVIDIA_H100_80GB", None, 3750.0, 7500.0),
            AcceleratorTotal("acme", small, "CPU", None, 30.0, 30.0),
        ]
        per_hour = await ledger.accelerator_totals("acme", *WIDE, per_hour=True)
        assert [(t.deployment, t.hour, t.accelerator_seconds) for t in per_hour] == [
            (big, H0, 7200.0),
            (big, H1, 300.0),
            (small, H1, 30.0),
        ]
        # since <= hour < until
        only_h1 = await ledger.accelerator_totals("acme", H1, H1 + timedelta(hours=1))
        assert [t.replica_seconds for t in only_h1] == [150.0, 30.0]
        everyone = await ledger.accelerator_totals(None, *WIDE)
        assert {t.account for t in everyone} == {"acme", "other"}
    finally:
        await ledger.close()


@pytest.mark.asyncio
async def test_many_rows_in_one_write(store_url: str) -> None:
    rows = [seconds(f"p{i}", H0 - timedelta(hours=i % 24), 1.0) for i in range(1200)]
    ledger = open_ledger(store_url)
    try:
        await ledger.record_accelerator_seconds(rows)
        assert len(await ledger.accelerator_rows([r.pod_uid for r in rows])) == 1200
    finally:
        await ledger.close()


@pytest.mark.asyncio
async def test_a_ledger_of_revision_0001_is_upgraded_and_keeps_its_records(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    engine = create_ledger_engine(ledger_url(url), pool_size=1)
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")
    engine.dispose()
    plain = create_engine(ledger_url(url))
    with plain.begin() as connection:
        tables = {r[0] for r in connection.execute(text("SELECT name FROM sqlite_master"))}
        assert "usage_records" in tables and "accelerator_seconds" not in tables
        # A record the gateway of revision 0001 wrote.
        connection.execute(
            text(
                "INSERT INTO usage_records (request_id, time, day, account, user, key_id, "
                "model, deployment, serverless, prompt_tokens, cached_tokens, "
                "completion_tokens, status, latency_ms) VALUES ('old-request', "
                "'2026-03-01 23:30:00.000000', '2026-03-01', 'acme', 'alice', 'key1', 'm', "
                "'d', 1, 1, 0, 1, 200, 1.0)"
            )
        )
    plain.dispose()

    upgraded = open_ledger(url)
    try:
        records = await upgraded.records("acme", H0 - timedelta(days=1), H0 + timedelta(days=1))
        assert [r.request_id for r in records] == ["old-request"]
        await upgraded.record_accelerator_seconds([seconds("a", H0, 5.0)])
        assert len(await upgraded.accelerator_rows(["a"])) == 1
    finally:
        await upgraded.close()
