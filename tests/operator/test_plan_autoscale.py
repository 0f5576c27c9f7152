"""The autoscaler's decisions, on an injected clock: windows, clamps, zero and back,
flapping load, missing metrics, manual scale (planning/autoscale.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hearth.api import DeploymentSpec
from hearth_operator.planning.autoscale import (
    MAX_SAMPLES,
    AutoscaleInputs,
    Memory,
    Policy,
    Sample,
    Scrape,
    decide,
    history_span,
    make_sample,
    observe_replicas,
    parse_duration,
    policy_of,
    remember,
    replica_load,
    required_replicas,
    scaled,
    start_memory,
)

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
STEP = 5.0  # seconds between two samples, as the controller's default interval


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def policy(low=0, high=5, up=30, down=600, zero=3600, targets=None) -> Policy:
    return Policy(
        min_replicas=low,
        max_replicas=high,
        scale_up_window=timedelta(seconds=up),
        scale_down_window=timedelta(seconds=down),
        scale_to_zero_window=timedelta(seconds=zero),
        load_targets=targets or {"concurrent_requests": 4.0},
    )


@dataclass
class Sim:
    """The controller's loop without I/O: every STEP seconds each ready replica is read,
    the sample remembered, a decision taken and applied at once (replicas start ready
    unless ``start_delay`` says otherwise)."""

    policy: Policy
    replicas: int = 1
    #: Total requests running over the Deployment at a time (spread over replicas).
    load: Callable[[float], float] = lambda t: 0.0
    #: Replicas that do not answer /metrics at a time.
    missing: Callable[[float], int] = lambda t: 0
    start_delay: float = 0.0
    t: float = 0.0
    memory: Memory = field(init=False)
    changes: list[tuple[float, int, str]] = field(default_factory=list)
    last: Any = None
    _started: dict[int, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.memory = start_memory(at(0), self.replicas, None)
        for index in range(self.replicas):
            self._started[index] = -1e9

    def scale(self, replicas: int) -> None:
        """Someone else (the gateway, a user) sets the scale subresource."""
        self._resize(replicas)
        self.memory = observe_replicas(self.memory, replicas, at(self.t))

    def _resize(self, replicas: int) -> None:
        for index in range(replicas):
            self._started.setdefault(index, self.t)
        for index in list(self._started):
            if index >= replicas:
                del self._started[index]
        self.replicas = replicas

    def step(self) -> None:
        now = at(self.t)
        ready = [i for i, s in self._started.items() if self.t - s >= self.start_delay]
        missing = self.missing(self.t)
        total = self.load(self.t)
        scrapes: dict[str, Scrape | None] = {}
        for position, index in enumerate(sorted(ready)):
            if position < missing:
                scrapes[f"r{index}"] = None
                continue
            share = total / len(ready)
            scrapes[f"r{index}"] = Scrape(now, running=share)
        memory = observe_replicas(self.memory, self.replicas, now)
        targets = self.policy.load_targets
        sample = make_sample(now, scrapes, memory.scrapes, targets, capacity=16)
        starting = len(self._started) - len(ready)
        memory = remember(
            memory, sample, scrapes, targets, history_span(self.policy), starting=starting
        )
        decision = decide(
            AutoscaleInputs(
                policy=self.policy,
                replicas=self.replicas,
                history=memory.history,
                now=now,
                last_scale=memory.last_scale,
                last_active=memory.last_active,
                starting=starting,
            )
        )
        self.last = decision
        if decision.replicas != self.replicas:
            self.changes.append((self.t, decision.replicas, decision.reason))
            self._resize(decision.replicas)
            memory = scaled(memory, decision.replicas, now)
        self.memory = memory
        self.t += STEP

    def run_until(self, seconds: float) -> Sim:
        while self.t <= seconds:
            self.step()
        return self


# -- windows ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("up", "load", "expected"),
    [
        (30, 10.0, (30.0, 3, "ScaledUp")),  # ceil(10 / 4) = 3 after exactly 30 s
        (30, 4.0, None),  # at target is not above it
        (30, 4.5, (30.0, 2, "ScaledUp")),
        (60, 10.0, (60.0, 3, "ScaledUp")),
        (0, 10.0, (0.0, 3, "ScaledUp")),  # a 0 s window acts on the first sample
        (30, 100.0, (30.0, 5, "ScaledUp")),  # clamped to maxReplicaCount
    ],
)
def test_scales_up_only_after_load_stays_above_target_for_the_window(up, load, expected):
    sim = Sim(policy(low=1, up=up), load=lambda t: load).run_until(120)
    assert sim.changes[:1] == ([expected] if expected else [])


def test_scale_up_goes_to_the_least_any_sample_in_the_window_asked_for():
    # 10 requests for 20 s, then 20: at 30 s the window asked for 3 and 5; 3 it is.
    sim = Sim(policy(low=1), load=lambda t: 10.0 if t < 20 else 20.0).run_until(30)
    assert sim.changes == [(30.0, 3, "ScaledUp")]
    # A full window after that change, the sustained 20 asks for 5.
    sim.run_until(70)
    assert sim.changes == [(30.0, 3, "ScaledUp"), (60.0, 5, "ScaledUp")]


def test_at_maximum_says_so_and_holds():
    sim = Sim(policy(low=1, high=2), load=lambda t: 40.0).run_until(200)
    assert sim.changes == [(30.0, 2, "ScaledUp")]
    assert sim.last.reason == "AtMaximum"
    assert "asks for 10 replicas" in sim.last.message


@pytest.mark.parametrize(
    ("low", "load", "expected"),
    [
        (1, 1.0, (600.0, 1, "ScaledDown")),
        (2, 1.0, (600.0, 2, "ScaledDown")),  # never under minReplicaCount
        (1, 6.0, (600.0, 2, "ScaledDown")),  # ceil(6 / 4) = 2
        (0, 1.0, (600.0, 1, "ScaledDown")),  # down stops at 1; zero is its own window
        (1, 12.0, None),  # 3 replicas is what 12 asks for
    ],
)
def test_scales_down_only_after_load_stays_below_target_for_the_window(low, load, expected):
    sim = Sim(policy(low=low), replicas=3, load=lambda t: load).run_until(900)
    assert sim.changes[:1] == ([expected] if expected else [])


def test_scale_down_keeps_the_most_any_sample_in_the_window_asked_for():
    # One sample asking for 2 in a window otherwise asking for 1: down to 2, not 1.
    sim = Sim(policy(low=1), replicas=4, load=lambda t: 6.0 if t == 300 else 1.0)
    sim.run_until(600)
    assert sim.changes == [(600.0, 2, "ScaledDown")]


# -- zero and back ------------------------------------------------------------------------


def test_scales_to_zero_after_no_request_for_the_window_and_not_before():
    sim = Sim(policy(low=0, high=1), load=lambda t: 0.0).run_until(3595)
    assert sim.changes == []
    assert sim.last.reason == "WithinTarget"
    assert "no request since 2026-11-25T12:00:00Z" in sim.last.message
    sim.run_until(3600)
    assert sim.changes == [(3600.0, 0, "ScaledToZero")]
    sim.run_until(4000)
    assert sim.last.reason == "AtZero"


def test_a_request_restarts_the_scale_to_zero_window():
    sim = Sim(policy(low=0, high=1), load=lambda t: 1.0 if t == 1000 else 0.0).run_until(5000)
    assert sim.changes == [(4600.0, 0, "ScaledToZero")]


def test_short_requests_between_samples_count_through_the_finished_counter():
    sample = make_sample(
        at(5),
        {"r0": Scrape(at(5), requests_finished=8)},
        {"r0": Scrape(at(0), requests_finished=7)},
        {"default": 0.8},
        capacity=16,
    )
    assert sample.active
    idle = make_sample(
        at(5),
        {"r0": Scrape(at(5), requests_finished=7)},
        {"r0": Scrape(at(0), requests_finished=7)},
        {"default": 0.8},
        capacity=16,
    )
    assert not idle.active


def test_the_gateway_raise_from_zero_counts_as_a_request():
    sim = Sim(policy(low=0, high=1, zero=300), replicas=0)
    sim.run_until(100)
    assert sim.last.reason == "AtZero"
    sim.scale(1)  # the gateway holds a request and raises replicas (t = 105)
    sim.run_until(400)
    assert sim.changes == []  # 295 s since the raise
    sim.run_until(405)
    assert sim.changes == [(405.0, 0, "ScaledToZero")]


def test_a_replica_still_starting_is_never_scaled_to_zero_or_down():
    # A model loading for 20 minutes, with a 5 minute scaleToZeroWindow (kserve#1247).
    sim = Sim(policy(low=0, high=1, zero=300), replicas=0, start_delay=1200)
    sim.run_until(10)
    sim.scale(1)  # at 15 s
    sim.run_until(1210)
    assert sim.changes == []
    assert sim.last.reason == "ReplicasStarting"
    # Ready at 1215: the window runs from the last sample that saw it starting (1210).
    sim.run_until(1505)
    assert sim.changes == []
    sim.run_until(1600)
    assert sim.changes == [(1510.0, 0, "ScaledToZero")]


def test_starting_replicas_do_not_block_scaling_up():
    sim = Sim(policy(low=1), replicas=1, load=lambda t: 10.0, start_delay=600).run_until(100)
    assert sim.changes == [(30.0, 3, "ScaledUp")]
    assert sim.last.reason == "ReplicasStarting"


# -- flapping -----------------------------------------------------------------------------


@pytest.mark.parametrize("period", [5.0, 10.0, 25.0, 50.0])
def test_flapping_load_never_oscillates(period):
    # Load swings between twice the target and a quarter of it, each phase shorter than
    # scaleUpWindow: no window is ever wholly on one side, so nothing changes in 3 hours.
    def swing(t: float) -> float:
        return 8.0 if int(t // period) % 2 == 0 else 1.0

    sim = Sim(policy(low=1, high=4, up=60), replicas=2, load=swing).run_until(3 * 3600)
    assert sim.changes == []


def test_load_flapping_slower_than_the_up_window_scales_up_once_and_stays():
    # Busy for 2 minutes, quiet for 2: each busy phase outlasts scaleUpWindow but no
    # quiet phase outlasts scaleDownWindow, so one change and then none.
    def swing(t: float) -> float:
        return 10.0 if int(t // 120) % 2 == 0 else 1.0

    sim = Sim(policy(low=1), load=swing).run_until(3 * 3600)
    assert sim.changes == [(30.0, 3, "ScaledUp")]


# -- missing metrics ----------------------------------------------------------------------


def test_missing_metrics_hold_steady_and_say_so():
    # Idle past scaleToZeroWindow, but one replica does not answer: no change.
    sim = Sim(policy(low=0, high=2), replicas=2, missing=lambda t: 1).run_until(4000)
    assert sim.changes == []
    assert sim.last.reason == "MetricsMissing"
    assert not sim.last.active
    assert "no /metrics from r0: holding at 2 replicas" in sim.last.message


def test_a_window_with_a_missing_sample_in_it_is_not_complete():
    # Above target throughout, but r0 did not answer at 15 s: the 30 s window is whole
    # only from 20 s on, so the scale-up comes at 50 s, not 30 s.
    sim = Sim(policy(low=1), replicas=1, load=lambda t: 10.0, missing=lambda t: int(t == 15))
    sim.run_until(100)
    assert sim.changes == [(50.0, 3, "ScaledUp")]


def test_no_ready_replica_is_not_idle():
    sample = make_sample(at(0), {}, {}, {"default": 0.8}, capacity=16)
    assert sample.load is None and sample.required is None
    inputs = AutoscaleInputs(
        policy=policy(low=0, high=1, zero=300),
        replicas=1,
        history=[sample],
        now=at(4000),
        last_scale=None,
        last_active=at(0),
        starting=1,
    )
    assert decide(inputs).replicas == 1


# -- manual scale -------------------------------------------------------------------------


def test_a_manual_scale_is_honoured_until_a_window_says_otherwise():
    sim = Sim(policy(low=1, high=5), replicas=1, load=lambda t: 2.0).run_until(100)
    sim.scale(4)  # at 105 s a user asks for 4; the load asks for 1
    sim.run_until(700)
    assert sim.changes == []  # 595 s since the manual scale
    sim.run_until(710)
    assert sim.changes == [(705.0, 1, "ScaledDown")]


def test_a_manual_scale_restarts_the_up_window():
    sim = Sim(policy(low=1, high=5), replicas=1, load=lambda t: 20.0).run_until(20)
    sim.scale(2)  # at 25 s, before the 30 s window ran out
    sim.run_until(50)
    assert sim.changes == []
    sim.run_until(60)
    assert sim.changes == [(55.0, 5, "ScaledUp")]


def test_fixed_size_and_zero_are_left_alone():
    fixed = decide(AutoscaleInputs(policy(low=2, high=2), 2, [], at(0), None, at(0)))
    assert (fixed.replicas, fixed.reason, fixed.active) == (2, "FixedSize", False)
    zero = decide(AutoscaleInputs(policy(low=0, high=3), 0, [], at(0), None, at(0)))
    assert (zero.replicas, zero.reason) == (0, "AtZero")


def test_replicas_outside_the_bounds_are_clamped():
    # maxReplicaCount lowered under the scale value: the decision is the clamp.
    busy = Sample(at(0), 1, {"concurrent_requests": 4.0}, 1)
    decision = decide(AutoscaleInputs(policy(low=1, high=3), 7, [busy], at(0), None, at(0)))
    assert decision.replicas == 3


# -- load --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scrape", "key", "expected"),
    [
        (Scrape(at(5), running=3, waiting=1), "concurrent_requests", 4.0),
        (Scrape(at(5), running=4), "default", 0.25),  # 4 of a capacity of 16
        (Scrape(at(5), running=1, kv_cache_usage=0.9), "default", 0.9),  # the KV cache is full
        (Scrape(at(5), running=20, waiting=12), "default", 2.0),  # queueing: past capacity
        (Scrape(at(5), requests_finished=110), "requests_per_second", 2.0),
        (Scrape(at(5), generation_tokens=1500), "tokens_generated_per_second", 100.0),
        (Scrape(at(5), requests_finished=5), "requests_per_second", 1.0),  # counter reset
    ],
)
def test_replica_load(scrape, key, expected):
    previous = Scrape(at(0), requests_finished=100, generation_tokens=1000)
    load, _ = replica_load(previous, scrape, capacity=16)
    assert load[key] == pytest.approx(expected)


def test_rates_need_a_second_read_of_the_replica():
    targets = {"requests_per_second": 2.0}
    first = make_sample(at(0), {"r0": Scrape(at(0), requests_finished=5)}, {}, targets, 16)
    assert first.load is None
    second = make_sample(
        at(5),
        {"r0": Scrape(at(5), requests_finished=30)},
        {"r0": Scrape(at(0), requests_finished=5)},
        targets,
        16,
    )
    assert second.load == {"requests_per_second": 5.0} and second.required == 3


@pytest.mark.parametrize(
    ("load", "targets", "expected"),
    [
        ({"default": 1.6}, {"default": 0.8}, 2),  # no float rounding up to 3
        ({"default": 1.61}, {"default": 0.8}, 3),
        ({"default": 0.0}, {"default": 0.8}, 0),
        # Several targets: the largest requirement wins.
        (
            {"concurrent_requests": 3.0, "tokens_generated_per_second": 900.0},
            {"concurrent_requests": 4.0, "tokens_generated_per_second": 200.0},
            5,
        ),
    ],
)
def test_required_replicas(load, targets, expected):
    assert required_replicas(load, targets) == expected


# -- policy -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("10m", 600), ("1h", 3600), ("1h30m", 5400), ("500ms", 0.5), ("0s", 0)],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "30", "1d", "s30", "1h 30m", "-5s"])
def test_parse_duration_refuses_what_the_crd_refuses(text):
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)


def test_policy_defaults_are_fireworks():
    resolved = policy_of(DeploymentSpec.model_validate({"baseModel": "m"}))
    assert resolved == Policy(
        min_replicas=0,
        max_replicas=1,
        scale_up_window=timedelta(seconds=30),
        scale_down_window=timedelta(minutes=10),
        scale_to_zero_window=timedelta(hours=1),
        load_targets={"default": 0.8},
    )


def test_policy_window_factor_and_targets():
    spec = DeploymentSpec.model_validate(
        {
            "baseModel": "m",
            "minReplicaCount": 1,
            "maxReplicaCount": 4,
            "autoscalingPolicy": {
                "scaleUpWindow": "100s",
                "scaleToZeroWindow": "1m",  # under Fireworks' 5 m floor: 5 m it is
                "loadTargets": {"concurrent_requests": 4, "requests_per_second": 2},
            },
        }
    )
    resolved = policy_of(spec, window_factor=0.01)
    assert resolved.scale_up_window == timedelta(seconds=1)
    assert resolved.scale_down_window == timedelta(seconds=6)
    assert resolved.scale_to_zero_window == timedelta(seconds=3)
    assert resolved.load_targets == {"concurrent_requests": 4.0, "requests_per_second": 2.0}
    assert (resolved.min_replicas, resolved.max_replicas, resolved.problems) == (1, 4, ())


def test_policy_reports_unknown_keys_by_field_and_uses_the_rest():
    # The CRD refuses these; an object stored before that rule still gets a clear word.
    spec = DeploymentSpec.model_validate(
        {"baseModel": "m", "autoscalingPolicy": {"loadTargets": {"gpu": 0.5, "default": 0.5}}}
    )
    resolved = policy_of(spec)
    assert resolved.load_targets == {"default": 0.5}
    assert resolved.problems == (
        "spec.autoscalingPolicy.loadTargets: unknown key 'gpu' (ignored); the keys are "
        "default, tokens_generated_per_second, requests_per_second, concurrent_requests",
    )


# -- memory ------------------------------------------------------------------------------


def test_history_is_bounded_by_the_longest_window_and_in_count():
    memory = start_memory(at(0), 1, None)
    targets = {"default": 0.8}
    for second in range(0, 2000, 5):
        scrapes = {"r0": Scrape(at(second))}
        sample = make_sample(at(second), scrapes, memory.scrapes, targets, 16)
        memory = remember(memory, sample, scrapes, targets, timedelta(seconds=600))
    times = [s.time for s in memory.history]
    assert times[0] == at(1995 - 600)  # the anchor of the 600 s window is kept
    assert len(times) == 121
    for second in range(2000, 2000 + 5 * (MAX_SAMPLES + 10), 5):
        sample = make_sample(at(second), {}, {}, targets, 16)
        memory = remember(memory, sample, {}, targets, timedelta(days=1))
    assert len(memory.history) == MAX_SAMPLES


def test_changed_targets_start_a_new_history():
    memory = start_memory(at(0), 1, None)
    sample = make_sample(at(0), {"r0": Scrape(at(0))}, {}, {"default": 0.8}, 16)
    memory = remember(memory, sample, {"r0": Scrape(at(0))}, {"default": 0.8}, timedelta(hours=1))
    sample = make_sample(at(5), {"r0": Scrape(at(5))}, {}, {"default": 0.5}, 16)
    memory = remember(memory, sample, {"r0": Scrape(at(5))}, {"default": 0.5}, timedelta(hours=1))
    assert [s.time for s in memory.history] == [at(5)]


def test_reads_of_gone_replicas_are_forgotten_and_of_missing_ones_kept():
    memory = start_memory(at(0), 2, None)
    reads = {"r0": Scrape(at(0)), "r1": Scrape(at(0))}
    sample = make_sample(at(0), reads, {}, {"default": 0.8}, 16)
    memory = remember(memory, sample, reads, {"default": 0.8}, timedelta(hours=1))
    now: dict[str, Scrape | None] = {"r0": None}  # r1 is gone, r0 did not answer
    sample = make_sample(at(5), now, memory.scrapes, {"default": 0.8}, 16)
    memory = remember(memory, sample, now, {"default": 0.8}, timedelta(hours=1))
    assert set(memory.scrapes) == {"r0"}
