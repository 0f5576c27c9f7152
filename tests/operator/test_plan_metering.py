"""GPU-seconds from pod timestamps (planning/metering.py): spans, hour buckets, rewrites,
the status sums."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hearth_operator.planning.metering import (
    HourSeconds,
    ReplicaSpan,
    Total,
    hourly_seconds,
    period_start,
    replica_span,
    rows_to_write,
    scheduled_at,
    usage_patch,
    usage_status,
    usage_statuses,
)
from tests.operator.factories import pod as make_pod

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def rfc(time: datetime) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def replica(
    name: str = "d1-h-0",
    *,
    scheduled: float | None = 0.0,
    gpus: int = 0,
    accelerator: str = "CPU",
    deleting: bool = False,
    phase: str = "Running",
    finished: list[float | None] | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """A model-server pod scheduled ``scheduled`` s after T0; ``finished``: one end per
    container (None: still running)."""
    pod = make_pod(name, gpus=gpus, accelerator=accelerator, phase=phase, **kwargs)
    pod["metadata"]["uid"] = f"uid-{name}"
    if deleting:
        pod["metadata"]["deletionTimestamp"] = rfc(at(10_000))  # the grace period's end
    conditions = pod["status"]["conditions"]
    if scheduled is None:
        pod["status"]["conditions"] = [c for c in conditions if c["type"] != "PodScheduled"]
    else:
        conditions[0]["lastTransitionTime"] = rfc(at(scheduled))
    if finished is not None:
        pod["spec"]["containers"] = [
            {"name": f"c{i}", "resources": pod["spec"]["containers"][0]["resources"]}
            for i in range(len(finished))
        ]
        pod["status"]["containerStatuses"] = [
            {"name": f"c{i}", "state": {"running": {}}}
            if end is None
            else {"name": f"c{i}", "state": {"terminated": {"finishedAt": rfc(at(end))}}}
            for i, end in enumerate(finished)
        ]
    return pod


# -- spans --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pod", "gone_at", "start", "end"),
    [
        pytest.param(replica(scheduled=5), None, 5, None, id="running: open"),
        pytest.param(replica(scheduled=5), 65, 5, 65, id="deletion seen: ends then"),
        pytest.param(
            replica(scheduled=5, deleting=True, finished=[40, 50]),
            None,
            5,
            50,
            id="terminating, all containers stopped: the last stop",
        ),
        pytest.param(
            replica(scheduled=5, deleting=True, finished=[40, None]),
            None,
            5,
            None,
            id="terminating, one container still running: open",
        ),
        pytest.param(
            replica(scheduled=5, deleting=True, finished=[40]),
            30,
            5,
            30,
            id="gone before the stop was reported: the earlier",
        ),
        pytest.param(
            replica(scheduled=5, deleting=True, finished=[40]),
            90,
            5,
            40,
            id="gone after its containers stopped: the stop",
        ),
        pytest.param(
            replica(scheduled=5, phase="Failed", finished=[20]),
            None,
            5,
            20,
            id="failed: ends when its container stopped",
        ),
        pytest.param(
            replica(scheduled=5, finished=[20]),
            None,
            5,
            None,
            id="running pod whose container crashed (will restart): still holds the replica",
        ),
        pytest.param(
            replica(scheduled=5, deleting=True, finished=[1]),
            None,
            5,
            5,
            id="stop before the schedule time (clock skew): empty, never negative",
        ),
    ],
)
def test_span_from_timestamps(
    pod: dict[str, Any], gone_at: float | None, start: float, end: float | None
) -> None:
    span = replica_span(pod, gone_at=None if gone_at is None else at(gone_at))
    assert span is not None
    assert span.start == at(start)
    assert span.end == (None if end is None else at(end))


def test_span_names_account_deployment_and_accelerators() -> None:
    gpu = replica_span(replica(gpus=2, accelerator="NVIDIA_H100_80GB", deployment="big"))
    assert gpu == ReplicaSpan(
        pod_uid="uid-d1-h-0",
        pod="d1-h-0",
        account="acme",
        deployment="accounts/acme/deployments/big",
        accelerator_type="NVIDIA_H100_80GB",
        accelerator_count=2,
        start=T0,
        end=None,
    )
    cpu = replica_span(replica())
    assert cpu is not None and (cpu.accelerator_type, cpu.accelerator_count) == ("CPU", 0)
    unannotated = replica()
    del unannotated["metadata"]["annotations"]["hearth.dev/accelerator-type"]
    span = replica_span(unannotated)
    assert span is not None and span.accelerator_type == "ACCELERATOR_TYPE_UNSPECIFIED"


def test_unscheduled_or_unlabelled_pods_have_no_span() -> None:
    pending = replica(scheduled=None, phase="Pending")
    assert scheduled_at(pending) is None
    assert replica_span(pending) is None
    unlabelled = replica()
    del unlabelled["metadata"]["labels"]["hearth.dev/deployment"]
    assert replica_span(unlabelled) is None


def test_a_running_pod_without_the_condition_counts_from_its_start_time() -> None:
    pod = replica(scheduled=None)
    pod["status"]["startTime"] = rfc(at(7))
    assert scheduled_at(pod) == at(7)


# -- hours --------------------------------------------------------------------------------


def span(start: datetime, end: datetime | None, count: int = 2) -> ReplicaSpan:
    return ReplicaSpan("u", "p", "acme", "accounts/acme/deployments/d", "X", count, start, end)


@pytest.mark.parametrize(
    ("start", "end", "now", "expected"),
    [
        pytest.param(at(600), at(1800), at(9999), [(T0, 1200.0)], id="within one hour"),
        pytest.param(
            at(3000),
            at(3600 * 2 + 60),
            at(99_999),
            [(T0, 600.0), (at(3600), 3600.0), (at(7200), 60.0)],
            id="across hours: split at each UTC hour",
        ),
        pytest.param(at(600), None, at(1000), [(T0, 400.0)], id="running: up to now"),
        pytest.param(
            at(3000), None, at(3700), [(T0, 600.0), (at(3600), 100.0)], id="running across"
        ),
        pytest.param(at(600), at(600), at(1000), [], id="empty span: no row"),
        pytest.param(at(600), None, at(500), [], id="now before start (skew): no row"),
        pytest.param(at(0), at(3600), at(9999), [(T0, 3600.0)], id="exactly one hour"),
    ],
)
def test_hour_buckets(
    start: datetime, end: datetime | None, now: datetime, expected: list[tuple[datetime, float]]
) -> None:
    rows = hourly_seconds(span(start, end), now)
    assert [(r.hour, r.replica_seconds) for r in rows] == expected
    # The hours add up to the span, whatever the split.
    total = ((end or max(now, start)) - start).total_seconds()
    assert sum(r.replica_seconds for r in rows) == pytest.approx(max(total, 0.0))


def test_gpu_seconds_are_replica_seconds_times_accelerators() -> None:
    (gpu,) = hourly_seconds(span(at(0), at(100), count=8), at(200))
    (cpu,) = hourly_seconds(span(at(0), at(100), count=0), at(200))
    assert (gpu.accelerator_seconds, cpu.accelerator_seconds) == (800.0, 100.0)


def test_since_skips_hours_already_final() -> None:
    long = span(at(0), None)
    rows = hourly_seconds(long, at(5 * 3600 + 10), since=at(4 * 3600 + 3599))
    assert [(r.hour, r.replica_seconds) for r in rows] == [
        (at(4 * 3600), 3600.0),
        (at(5 * 3600), 10.0),
    ]


def test_a_timezone_other_than_utc_buckets_by_utc_hour() -> None:
    from datetime import timezone

    plus_half = timezone(timedelta(hours=5, minutes=30))
    rows = hourly_seconds(span(at(1800).astimezone(plus_half), at(5400)), at(9999))
    assert [(r.hour, r.replica_seconds) for r in rows] == [(T0, 1800.0), (at(3600), 1800.0)]


# -- restarts: recomputed, replaced, never added ------------------------------------------


def test_recomputing_after_a_restart_writes_only_what_changed() -> None:
    running = span(at(3000), None)
    first = rows_to_write(running, at(3700), {})  # the last pass before the restart
    stored = {r.hour: r.replica_seconds for r in first}
    assert stored == {T0: 600.0, at(3600): 100.0}
    # After the restart the same pod is computed again, from its timestamps, in full.
    written = rows_to_write(running, at(3900), stored)
    assert [(r.hour, r.replica_seconds) for r in written] == [(at(3600), 300.0)]
    stored.update({r.hour: r.replica_seconds for r in written})
    # What is stored equals the lifetime so far: nothing counted twice.
    assert sum(stored.values()) == (at(3900) - at(3000)).total_seconds()
    assert rows_to_write(running, at(3900), stored) == []


def test_later_passes_compute_only_from_the_last_pass_hour() -> None:
    running = span(at(0), None)
    stored = {r.hour: r.replica_seconds for r in rows_to_write(running, at(3 * 3600 + 5), {})}
    later = rows_to_write(running, at(3 * 3600 + 65), stored, since=at(3 * 3600 + 5))
    assert [(r.hour, r.replica_seconds) for r in later] == [(at(3 * 3600), 65.0)]


def test_a_deleted_pods_last_rows_replace_the_running_ones() -> None:
    stored = {r.hour: r.replica_seconds for r in rows_to_write(span(at(0), None), at(100), {})}
    final = rows_to_write(span(at(0), at(130)), at(500), stored, since=at(100))
    assert [(r.hour, r.replica_seconds) for r in final] == [(T0, 130.0)]


def test_an_end_earlier_than_a_pass_assumed_is_taken_back() -> None:
    # A pass at 3605 s saw the replica running; its containers had stopped at 3590 s.
    stored = {r.hour: r.replica_seconds for r in rows_to_write(span(at(0), None), at(3605), {})}
    assert stored == {T0: 3600.0, at(3600): 5.0}
    final = rows_to_write(span(at(0), at(3590)), at(3700), stored, since=at(3605))
    assert sorted((r.hour, r.replica_seconds) for r in final) == [(T0, 3590.0), (at(3600), 0.0)]


# -- status -------------------------------------------------------------------------------


def test_period_is_the_utc_month() -> None:
    assert period_start(datetime(2026, 11, 30, 23, 59, tzinfo=UTC)) == datetime(
        2026, 11, 1, tzinfo=UTC
    )


def test_usage_status_per_deployment_and_account() -> None:
    totals = [
        Total("acme", "accounts/acme/deployments/big", "NVIDIA_H100_80GB", 100.4, 200.8),
        Total("acme", "accounts/acme/deployments/big", "NVIDIA_A100_80GB", 10.0, 10.0),
        Total("acme", "accounts/acme/deployments/small", "CPU", 50.6, 50.6),
        Total("other", "accounts/other/deployments/big", "CPU", 5.0, 5.0),
    ]
    start = datetime(2026, 11, 1, tzinfo=UTC)
    deployments, accounts = usage_statuses(totals, start)
    assert deployments[("acme", "big")] == {
        "periodStart": "2026-11-01T00:00:00Z",
        "acceleratorSeconds": {"NVIDIA_A100_80GB": 10, "NVIDIA_H100_80GB": 201},
        "replicaSeconds": {"NVIDIA_A100_80GB": 10, "NVIDIA_H100_80GB": 100},
    }
    assert accounts["acme"]["acceleratorSeconds"] == {
        "CPU": 51,
        "NVIDIA_A100_80GB": 10,
        "NVIDIA_H100_80GB": 201,
    }
    assert set(deployments) == {("acme", "big"), ("acme", "small"), ("other", "big")}
    assert usage_status([], start)["acceleratorSeconds"] == {}


def test_a_new_period_removes_types_of_the_last_one() -> None:
    december = datetime(2026, 12, 1, tzinfo=UTC)
    previous = usage_status([Total("a", "accounts/a/deployments/d", "CPU", 9.0, 9.0)], T0)
    now = usage_status([Total("a", "accounts/a/deployments/d", "X", 1.0, 2.0)], december)
    assert usage_patch(now, previous)["acceleratorSeconds"] == {"CPU": None, "X": 2}
    assert usage_patch(now, None) == now


def test_hour_rows_carry_what_the_ledger_needs() -> None:
    (row,) = hourly_seconds(span(at(0), at(10)), at(10))
    assert row == HourSeconds("u", "p", T0, "acme", "accounts/acme/deployments/d", "X", 2, 10.0)
