"""``--threads``' default: the CPUs the process may use, capped by its cgroup quota."""

from __future__ import annotations

import pytest

from hearth_server.cli import build_parser, settings_from_args
from hearth_server.cpu_threads import parse_cpu_max, quota_cpus, thread_budget


@pytest.mark.parametrize(
    ("text", "cpus"),
    [
        ("max 100000\n", None),  # no limit
        ("200000 100000\n", 2.0),  # a pod with cpu: 2
        ("50000 100000", 0.5),
        ("garbage", None),
        ("", None),
    ],
)
def test_cgroup_v2_cpu_max(text: str, cpus: float | None) -> None:
    assert parse_cpu_max(text) == cpus


def test_cgroup_v1_quota() -> None:
    assert quota_cpus(-1, 100000) is None  # v1's "no limit"
    assert quota_cpus(300000, 100000) == 3.0


@pytest.mark.parametrize(
    ("affinity", "quota", "threads"),
    [
        (64, None, 64),  # no quota: every CPU it may run on
        (64, 4.0, 4),  # a 64-core node, a pod limited to 4 CPUs
        (64, 1.5, 2),  # a fraction rounds up
        (64, 0.25, 1),  # never fewer than one
        (2, 8.0, 2),  # a quota above the affinity does not add CPUs
    ],
)
def test_thread_budget(affinity: int, quota: float | None, threads: int) -> None:
    assert thread_budget(affinity, quota) == threads


def test_threads_flag() -> None:
    parse = build_parser().parse_args
    assert settings_from_args(parse(["serve", "m"])).threads is None
    assert settings_from_args(parse(["serve", "m", "--threads", "3"])).threads == 3
    with pytest.raises(SystemExit):
        parse(["serve", "m", "--threads", "0"])
