"""Autoscaling decisions: load samples, the policy and the clock in; replicas out (pure).

The controller (``controllers/autoscaler.py``) reads every ready replica's ``/metrics``
on an interval and turns the reads into one :class:`Sample` per Deployment; this module
decides. Fireworks' ``autoscalingPolicy`` semantics:

- **Up** after the load has asked for more replicas than there are for the whole
  ``scaleUpWindow`` (default 30 s), to the *smallest* count any sample in that window
  asked for (load that only just spiked adds only what it needed throughout), at most
  ``maxReplicaCount``.
- **Down** after the load has asked for fewer replicas for the whole ``scaleDownWindow``
  (default 10 m), to the *largest* count asked for in that window, at least
  ``max(minReplicaCount, 1)``.
- **To zero** (only with ``minReplicaCount: 0``) when no request has been seen for
  ``scaleToZeroWindow`` (default 1 h). A scale change the autoscaler did not make (the
  gateway raising a Deployment from zero for a held request, a manual ``kubectl scale``)
  counts as a request at that moment, so the gateway's raise and the autoscaler never
  fight: the replica it started lives at least ``scaleToZeroWindow``.
- A window counts only from the last scale change on (samples taken before it measured
  other replicas), so every change is followed by a full window before the next one, and
  load that flaps around the target, never staying on one side for a window, changes
  nothing.
- A ready replica whose ``/metrics`` did not answer is neither load nor idle: nothing
  changes while one is missing (``MetricsMissing``), and a window with such a sample in
  it is not complete. Nothing scales down or to zero while replicas are still starting
  (a model loading for minutes is not idle).

Load per target key (``loadTargets``, per replica, as Fireworks defines them):
``concurrent_requests`` = running + waiting requests; ``requests_per_second`` = finished
requests per second; ``tokens_generated_per_second`` = generated tokens per second;
``default`` = the fraction of a replica's capacity in use: the larger of KV-cache use and
(running + waiting) / the replica's batch capacity. A sample asks for
``ceil(total load / target)`` replicas for each key, and the largest wins.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from hearth.api import DeploymentSpec

from ..conditions import format_time

#: The loadTargets keys Fireworks documents (firectl --load-targets).
LOAD_KEYS = ("default", "tokens_generated_per_second", "requests_per_second", "concurrent_requests")
#: Keys measured as rates between two reads of the same replica.
RATE_KEYS = frozenset({"tokens_generated_per_second", "requests_per_second"})
#: Fireworks' floor for scaleToZeroWindow (the CRD refuses less).
MIN_SCALE_TO_ZERO_WINDOW = timedelta(minutes=5)
#: Samples kept per Deployment at most, whatever the windows (bounded memory).
MAX_SAMPLES = 1024

_DURATION_PART = re.compile(r"([0-9]+)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> timedelta:
    """A Go-style duration as the CRD accepts it ("30s", "10m", "1h30m", "500ms")."""
    position, seconds = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            break
        seconds += int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    if not text or position != len(text):
        raise ValueError(f"{text!r} is not a duration like 30s, 10m or 1h30m")
    return timedelta(seconds=seconds)


@dataclass(frozen=True)
class Policy:
    """One Deployment's autoscaling policy, resolved: bounds, windows and targets."""

    min_replicas: int
    max_replicas: int
    scale_up_window: timedelta = timedelta(seconds=30)
    scale_down_window: timedelta = timedelta(minutes=10)
    scale_to_zero_window: timedelta = timedelta(hours=1)
    load_targets: Mapping[str, float] = field(default_factory=lambda: {"default": 0.8})
    #: What was wrong with the policy as written (unknown keys, bad targets), for the
    #: condition; what is usable is still used.
    problems: tuple[str, ...] = ()


def policy_of(spec: DeploymentSpec, *, window_factor: float = 1.0) -> Policy:
    """The policy of a Deployment spec; ``window_factor`` (< 1 only in tests and demos)
    shortens every window, since the CRD refuses a scaleToZeroWindow under 5 minutes."""
    policy = spec.autoscaling_policy
    maximum = spec.max_replica_count
    if maximum is None:
        maximum = max(spec.min_replica_count, 1)
    problems: list[str] = []
    targets: dict[str, float] = {}
    for key, value in sorted(policy.load_targets.items()):
        if key not in LOAD_KEYS:
            problems.append(
                f"spec.autoscalingPolicy.loadTargets: unknown key {key!r} (ignored); "
                f"the keys are {', '.join(LOAD_KEYS)}"
            )
        elif not value > 0 or (key == "default" and value > 1):
            problems.append(
                f"spec.autoscalingPolicy.loadTargets.{key}: {value} is out of range (ignored)"
            )
        else:
            targets[key] = float(value)
    if not targets:
        targets = {"default": 0.8}
    zero = max(parse_duration(policy.scale_to_zero_window), MIN_SCALE_TO_ZERO_WINDOW)
    return Policy(
        min_replicas=spec.min_replica_count,
        max_replicas=max(maximum, spec.min_replica_count),
        scale_up_window=parse_duration(policy.scale_up_window) * window_factor,
        scale_down_window=parse_duration(policy.scale_down_window) * window_factor,
        scale_to_zero_window=zero * window_factor,
        load_targets=targets,
        problems=tuple(problems),
    )


@dataclass(frozen=True)
class Scrape:
    """What one replica's ``/metrics`` said at one moment."""

    time: datetime
    running: float = 0.0
    waiting: float = 0.0
    kv_cache_usage: float = 0.0
    #: Counters (totals since the server started).
    generation_tokens: float = 0.0
    requests_finished: float = 0.0


@dataclass(frozen=True)
class Sample:
    """One look at a Deployment's ready replicas."""

    time: datetime
    #: Ready replicas measured (those that answered).
    replicas: int
    #: Total load over the replicas by loadTargets key; None when incomplete (a replica
    #: missing, none ready yet, or a rate with no earlier read to compare with).
    load: Mapping[str, float] | None
    #: Replicas asked for by this load (:func:`required_replicas`); None when incomplete.
    required: int | None
    #: Ready replicas that did not answer their /metrics.
    missing: tuple[str, ...] = ()
    #: Whether a request was running, waiting or finished since the previous read.
    active: bool = False


def _rate(previous: float, current: float, seconds: float) -> float:
    # A counter that went down was reset (the server restarted): count from zero.
    delta = current - previous if current >= previous else current
    return delta / seconds


def replica_load(
    previous: Scrape | None, current: Scrape, capacity: int
) -> tuple[dict[str, float], bool]:
    """One replica's load by key (rates only with an earlier read) and whether it was busy."""
    concurrency = current.running + current.waiting
    load = {
        "concurrent_requests": concurrency,
        "default": max(current.kv_cache_usage, concurrency / max(capacity, 1)),
    }
    active = concurrency > 0
    if previous is not None:
        seconds = (current.time - previous.time).total_seconds()
        if seconds > 0:
            load["requests_per_second"] = _rate(
                previous.requests_finished, current.requests_finished, seconds
            )
            load["tokens_generated_per_second"] = _rate(
                previous.generation_tokens, current.generation_tokens, seconds
            )
        active = active or current.requests_finished != previous.requests_finished
    return load, active


def required_replicas(load: Mapping[str, float], targets: Mapping[str, float]) -> int:
    """``ceil(total / target)`` per target key; the largest requirement wins."""
    needed = 0
    for key, target in targets.items():
        # The epsilon keeps 1.6 / 0.8 from becoming 3 through float rounding.
        needed = max(needed, math.ceil(load.get(key, 0.0) / target - 1e-9))
    return needed


def make_sample(
    now: datetime,
    scrapes: Mapping[str, Scrape | None],
    previous: Mapping[str, Scrape],
    targets: Mapping[str, float],
    capacity: int,
) -> Sample:
    """A Sample from this pass's reads (None: the replica did not answer) and the last
    successful read of each replica (for rates and finished-request counts)."""
    missing = tuple(sorted(name for name, scrape in scrapes.items() if scrape is None))
    totals: dict[str, float] = dict.fromkeys(targets, 0.0)
    active, complete = False, not missing and bool(scrapes)
    for name, scrape in scrapes.items():
        if scrape is None:
            continue
        load, busy = replica_load(previous.get(name), scrape, capacity)
        active = active or busy
        for key in targets:
            if key in load:
                totals[key] += load[key]
            else:
                complete = False  # a rate needs a second read of this replica
    measured = len(scrapes) - len(missing)
    if not complete:
        return Sample(now, measured, None, None, missing, active)
    return Sample(now, measured, totals, required_replicas(totals, targets), missing, active)


@dataclass(frozen=True)
class Memory:
    """What the controller keeps per Deployment between passes (in memory only)."""

    #: The scale value last seen or written; a different value found later was set by
    #: someone else (the gateway, a user, an HPA).
    replicas: int
    #: The last request seen, or the last scale change someone else made.
    last_active: datetime
    #: The last change of the replica count, by anyone.
    last_scale: datetime | None
    history: tuple[Sample, ...] = ()
    #: The last successful read of each replica.
    scrapes: Mapping[str, Scrape] = field(default_factory=dict)
    #: The targets the history was measured against.
    targets: Mapping[str, float] = field(default_factory=dict)


def start_memory(now: datetime, replicas: int, last_scale: datetime | None) -> Memory:
    """A Deployment seen for the first time (or after a restart): the last request is
    taken to be now, so a restart never scales anything to zero early."""
    return Memory(replicas=replicas, last_active=now, last_scale=last_scale)


def observe_replicas(memory: Memory, replicas: int, now: datetime) -> Memory:
    """Take in the scale value found now; a change someone else made counts as activity."""
    if replicas == memory.replicas:
        return memory
    return replace(memory, replicas=replicas, last_scale=now, last_active=now)


def remember(
    memory: Memory,
    sample: Sample,
    scrapes: Mapping[str, Scrape | None],
    targets: Mapping[str, float],
    keep: timedelta,
    *,
    starting: int = 0,
) -> Memory:
    """Add ``sample``; drop samples older than ``keep`` (but one, the anchor of the longest
    window) and the reads of replicas that are gone.

    A replica still starting counts as activity like a request: someone wanted it (the
    gateway holding a request, a user), and the scaleToZeroWindow begins once it is ready,
    not when it was asked for, so a model that loads for longer than the window is not
    scaled away the moment it can serve.
    """
    history = memory.history if dict(targets) == dict(memory.targets) else ()
    history = (*history, sample)
    cutoff = sample.time - keep
    start = 0
    while start + 1 < len(history) and history[start + 1].time <= cutoff:
        start += 1
    start = max(start, len(history) - MAX_SAMPLES)
    kept: dict[str, Scrape] = {
        name: scrape
        for name, scrape in memory.scrapes.items()
        if name in scrapes and scrapes[name] is None  # missing now: keep its last read
    }
    kept.update({name: scrape for name, scrape in scrapes.items() if scrape is not None})
    return replace(
        memory,
        history=history[start:],
        scrapes=kept,
        targets=dict(targets),
        last_active=sample.time if sample.active or starting else memory.last_active,
    )


def scaled(memory: Memory, replicas: int, now: datetime) -> Memory:
    """After the autoscaler's own write."""
    return replace(memory, replicas=replicas, last_scale=now)


def history_span(policy: Policy) -> timedelta:
    """How far back the decision looks (the longest window)."""
    return max(policy.scale_up_window, policy.scale_down_window)


@dataclass(frozen=True)
class AutoscaleInputs:
    policy: Policy
    #: The scale value now (spec.replicaCount, or minReplicaCount when unset).
    replicas: int
    #: Oldest first.
    history: Sequence[Sample]
    now: datetime
    last_scale: datetime | None
    last_active: datetime
    #: Replicas that exist but are not ready yet.
    starting: int = 0


@dataclass(frozen=True)
class Decision:
    replicas: int
    #: CamelCase, for the condition and the event.
    reason: str
    #: In words, with the numbers behind it.
    message: str
    #: False when the autoscaler cannot act (metrics missing, fixed size): the condition.
    active: bool = True
    #: Load per ready replica by key in the last sample; None when it had none.
    load: Mapping[str, float] | None = None
    recommended: int | None = None
    sampled: int = 0
    sample_time: datetime | None = None


def _seconds(delta: timedelta) -> str:
    return f"{delta.total_seconds():g}s"


def _window(
    history: Sequence[Sample], now: datetime, window: timedelta, since: datetime | None
) -> list[int] | None:
    """What the samples describing [now - window, now] asked for: the last one at or
    before the start and all after it. None when the history does not reach back that far
    since the last scale change, or a sample in it is incomplete."""
    start = now - window
    if since is not None and since > start:
        return None
    for index in range(len(history) - 1, -1, -1):
        if history[index].time <= start:
            if since is not None and history[index].time < since:
                return None
            asked = [s.required for s in history[index:] if s.required is not None]
            return asked if len(asked) == len(history) - index else None
    return None


def _run_start(
    history: Sequence[Sample], since: datetime | None, above: bool, current: int
) -> datetime | None:
    """When the trailing run of samples on one side of ``current`` began."""
    began = None
    for sample in reversed(history):
        if sample.required is None or (since is not None and sample.time < since):
            break
        if (sample.required > current) if above else (sample.required < current):
            began = sample.time
        else:
            break
    return began


def _load_text(load: Mapping[str, float], targets: Mapping[str, float]) -> str:
    return ", ".join(
        f"{key} {load.get(key, 0.0):.2f}/{target:g}" for key, target in targets.items()
    )


def _plural(count: int) -> str:
    return f"{count} replica{'s' if count != 1 else ''}"


def decide(inputs: AutoscaleInputs) -> Decision:
    """Desired replicas, why, and the numbers behind it.

    Messages name moments (``since <time>``), not elapsed durations, so the condition
    built from them stays the same from one pass to the next while nothing changes.
    """
    policy, now = inputs.policy, inputs.now
    low, high = policy.min_replicas, policy.max_replicas
    current = min(max(inputs.replicas, low), high)
    history = inputs.history
    if low == high:
        return Decision(
            current,
            "FixedSize",
            f"minReplicaCount = maxReplicaCount = {low}: nothing to scale",
            active=False,
        )
    if current == 0:
        return Decision(0, "AtZero", "no replicas; the next request through the gateway starts one")
    latest = history[-1] if history else None
    if latest is None:
        return Decision(current, "NoSamples", "waiting for the first load sample")
    if latest.missing:
        return Decision(
            current,
            "MetricsMissing",
            f"no /metrics from {', '.join(latest.missing)}: holding at {_plural(current)}",
            active=False,
            sampled=latest.replicas,
            sample_time=latest.time,
        )
    if latest.load is None or latest.required is None:
        if latest.replicas == 0:
            return Decision(current, "ReplicasStarting", "no ready replica to measure yet; holding")
        return Decision(current, "NoSamples", "waiting for a second read of each replica (rates)")

    per_replica = {k: v / latest.replicas for k, v in latest.load.items()}
    recommended = latest.required
    numbers = (
        f"load per replica {_load_text(per_replica, policy.load_targets)} on "
        f"{latest.replicas} ready asks for {_plural(recommended)}"
    )

    def outcome(replicas: int, reason: str, message: str) -> Decision:
        return Decision(
            replicas,
            reason,
            message,
            load=per_replica,
            recommended=recommended,
            sampled=latest.replicas,
            sample_time=latest.time,
        )

    # Up: above target for the whole scaleUpWindow since the last change.
    if recommended > current and current < high:
        asked = _window(history, now, policy.scale_up_window, inputs.last_scale)
        if asked is not None and min(asked) > current:
            target = min(min(asked), high)
            return outcome(
                target,
                "ScaledUp",
                f"{current} -> {target}: {numbers}; above target for the "
                f"{_seconds(policy.scale_up_window)} scaleUpWindow",
            )
    if inputs.starting:
        return outcome(
            current,
            "ReplicasStarting",
            f"{numbers}; {inputs.starting} starting, so not scaling down meanwhile",
        )
    # To zero: no request for scaleToZeroWindow.
    idle = now - inputs.last_active
    if low == 0 and not latest.active and idle >= policy.scale_to_zero_window:
        return outcome(
            0,
            "ScaledToZero",
            f"{current} -> 0: no request for {_seconds(idle)} (scaleToZeroWindow "
            f"{_seconds(policy.scale_to_zero_window)})",
        )
    # Down: below target for the whole scaleDownWindow since the last change.
    floor = max(low, 1)
    if recommended < current and current > floor:
        asked = _window(history, now, policy.scale_down_window, inputs.last_scale)
        if asked is not None and max(asked) < current:
            target = max(max(asked), floor)
            return outcome(
                target,
                "ScaledDown",
                f"{current} -> {target}: {numbers}; below target for the "
                f"{_seconds(policy.scale_down_window)} scaleDownWindow",
            )
    # Holding: say since when each window has been running.
    if recommended > current:
        if current >= high:
            return outcome(current, "AtMaximum", f"{numbers}; at maxReplicaCount {high}")
        began = _run_start(history, inputs.last_scale, True, current)
        return outcome(
            current,
            "AboveTarget",
            f"{numbers}; above target since {format_time(began or now)} "
            f"(scaleUpWindow {_seconds(policy.scale_up_window)})",
        )
    zero_note = ""
    if low == 0:
        zero_note = (
            "; serving requests"
            if latest.active
            else f"; no request since {format_time(inputs.last_active)} (scaleToZeroWindow "
            f"{_seconds(policy.scale_to_zero_window)})"
        )
    if recommended < current and current > floor:
        began = _run_start(history, inputs.last_scale, False, current)
        return outcome(
            current,
            "BelowTarget",
            f"{numbers}; below target since {format_time(began or now)} (scaleDownWindow "
            f"{_seconds(policy.scale_down_window)}){zero_note}",
        )
    return outcome(current, "WithinTarget", f"{numbers}{zero_note}")
