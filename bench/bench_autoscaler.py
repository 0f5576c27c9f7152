"""Autoscaler decision-loop cost: 1,000 Deployments, each with a full load history.

Times the pure part of one autoscaler pass (planning/autoscale.py) on a synthetic fleet:
for every Deployment, build the sample from its replicas' reads, remember it, and decide.
Each Deployment has 1-4 replicas and a history as long as its longest window allows
(10 minutes at the default 5 s interval: 121 samples), with a mix of load shapes (idle,
steady within target, above target, below target, flapping) so every decision branch runs.
Reports milliseconds per pass (median and worst of the repeats) for the whole pass and for
``decide`` alone, against the 5 s interval the loop runs at. I/O (listing, /metrics reads,
writes) is not included: it is bounded by the API server and the replicas, not this code.

    .venv/bin/python bench/bench_autoscaler.py [--deployments 1000 --repeats 20]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hearth_operator.planning.autoscale import (  # noqa: E402
    AutoscaleInputs,
    Memory,
    Policy,
    Scrape,
    decide,
    history_span,
    make_sample,
    observe_replicas,
    remember,
    start_memory,
)

INTERVAL = 5.0
T0 = datetime(2026, 11, 25, tzinfo=UTC)
SHAPES = ("idle", "steady", "above", "below", "flapping")


def load_of(shape: str, step: int, replicas: int) -> float:
    """Requests running per replica."""
    return {
        "idle": 0.0,
        "steady": 3.0,
        "above": 7.0,
        "below": 1.0,
        "flapping": 7.0 if step % 2 else 1.0,
    }[shape] * (1 if replicas else 0)


def fleet(count: int, seed: int = 7) -> list[tuple[Policy, str, int]]:
    rng = random.Random(seed)
    targets = (
        {"default": 0.8},
        {"concurrent_requests": 4.0},
        {"concurrent_requests": 4.0, "requests_per_second": 5.0},
    )
    return [
        (
            Policy(
                min_replicas=rng.choice((0, 1)), max_replicas=8, load_targets=rng.choice(targets)
            ),
            rng.choice(SHAPES),
            rng.randint(1, 4),
        )
        for _ in range(count)
    ]


def one_pass(
    deployments: list[tuple[Policy, str, int]], memories: list[Memory], step: int
) -> tuple[float, float]:
    """(seconds for the whole pure pass, seconds spent in decide)."""
    now = T0 + timedelta(seconds=step * INTERVAL)
    in_decide = 0.0
    started = time.perf_counter()
    for index, (policy, shape, replicas) in enumerate(deployments):
        memory = observe_replicas(memories[index], replicas, now)
        per_replica = load_of(shape, step, replicas)
        reads: dict[str, Scrape | None] = {
            f"d{index}-r{r}": Scrape(now, running=per_replica, requests_finished=step * 3.0)
            for r in range(replicas)
        }
        sample = make_sample(now, reads, memory.scrapes, policy.load_targets, 16)
        memory = remember(memory, sample, reads, policy.load_targets, history_span(policy))
        memories[index] = memory
        before = time.perf_counter()
        decide(
            AutoscaleInputs(
                policy=policy,
                replicas=replicas,
                history=memory.history,
                now=now,
                last_scale=None,
                last_active=memory.last_active,
            )
        )
        in_decide += time.perf_counter() - before
    return time.perf_counter() - started, in_decide


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deployments", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()

    deployments = fleet(args.deployments)
    memories = [start_memory(T0, replicas, None) for _, _, replicas in deployments]
    warm = int(history_span(deployments[0][0]).total_seconds() / INTERVAL) + 1
    for step in range(warm):  # fill every history to its window
        one_pass(deployments, memories, step)
    lengths = [len(m.history) for m in memories]
    totals, decides = [], []
    for step in range(warm, warm + args.repeats):
        total, in_decide = one_pass(deployments, memories, step)
        totals.append(total * 1000)
        decides.append(in_decide * 1000)
    print(
        f"autoscaler decision loop, {args.deployments} Deployments, "
        f"{statistics.mean(lengths):.0f} samples of history each, {args.repeats} passes"
    )
    for label, times in (("whole pure pass", totals), ("decide alone", decides)):
        print(
            f"  {label:16} median {statistics.median(times):6.1f} ms per pass, "
            f"max {max(times):6.1f} ms"
        )
    share = statistics.median(totals) / (INTERVAL * 1000) * 100
    print(f"  = {share:.2f}% of the {INTERVAL:g} s interval the loop runs at")


if __name__ == "__main__":
    main()
