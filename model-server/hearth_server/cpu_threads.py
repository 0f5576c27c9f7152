"""How many CPU threads the engine's torch kernels should use (``--threads``).

torch defaults to one thread per core of the *machine*. In a Kubernetes pod with a CPU
limit that is far more threads than the pod's CPU quota pays for: the kernels' threads
then wait on each other while the kernel throttles the pod (each matmul's slowest thread
decides). The default here is what the process may really use: the CPUs it may run on
(its affinity), capped by its cgroup's CPU quota, rounded up.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_V2_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")
CGROUP_V1_QUOTA = Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us")
CGROUP_V1_PERIOD = Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us")


def quota_cpus(quota: int | None, period: int | None) -> float | None:
    """CPUs a CFS quota allows (None: no quota)."""
    if quota is None or period is None or quota <= 0 or period <= 0:
        return None
    return quota / period


def parse_cpu_max(text: str) -> float | None:
    """cgroup v2 ``cpu.max`` ("max 100000", or "200000 100000" for 2 CPUs) -> CPUs."""
    parts = text.split()
    if len(parts) != 2 or parts[0] == "max":
        return None
    try:
        return quota_cpus(int(parts[0]), int(parts[1]))
    except ValueError:
        return None


def thread_budget(affinity: int, quota: float | None) -> int:
    """Threads worth running: ``affinity`` CPUs, capped by ``quota`` CPUs rounded up."""
    budget = max(affinity, 1)
    if quota is not None:
        budget = min(budget, max(math.ceil(quota), 1))
    return budget


def read_quota() -> float | None:
    """This process's cgroup CPU quota in CPUs (v2, else v1); None when unlimited."""
    try:
        return parse_cpu_max(CGROUP_V2_CPU_MAX.read_text())
    except OSError:
        pass
    try:
        quota = int(CGROUP_V1_QUOTA.read_text())
        period = int(CGROUP_V1_PERIOD.read_text())
    except (OSError, ValueError):
        return None
    return quota_cpus(quota, period)


def default_threads() -> tuple[int, str]:
    """(threads, why) for this process."""
    affinity = len(os.sched_getaffinity(0))
    quota = read_quota()
    threads = thread_budget(affinity, quota)
    limit = "no CPU quota" if quota is None else f"CPU quota {quota:g}"
    return threads, f"{affinity} CPUs in the affinity mask, {limit}"
