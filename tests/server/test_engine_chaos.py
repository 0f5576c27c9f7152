"""Chaos test of continuous batching: under concurrent load with adapters, requests
arrive, finish, are aborted and lose their consumer in a seeded random order (first,
middle and last slot; also after the KV cache grew during decode), and a poisoned
adapter makes some rows non-finite. Every request that was left alone must produce
exactly its solo greedy output, and the engine must stay alive.

Deterministic by construction: apart from one starter request, every submission,
abort and disconnect is fired from a consumer callback on the engine thread at a
scheduled engine step, so each run of a seed sees the same interleaving.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest

from hearth_server.engine.engine import Engine, EngineConfig, Sequence
from hearth_server.engine.params import SamplingParams, StepOutput
from hearth_server.engine.sampler import NON_FINITE
from hearth_server.models.tiny import CORPUS
from tests.server.conftest import Collected, generate, load_tiny
from tests.server.test_engine import wait_until
from tests.server.test_engine_robustness import _poisoned, _serve

CONFIG = {
    "max_model_len": 320,
    "max_num_seqs": 6,
    "max_num_batched_tokens": 64,  # long prompts prefill in chunks beside decoding rows
    "max_loras": 2,  # three adapters compete for two slots
    "max_cpu_loras": 4,
}
INITIAL_CAPACITY = 256
ADAPTERS: list[str | None] = [None, "alpha", "beta", "nan"]
Where = Literal["first", "middle", "last"]


class Disconnected(Exception):
    """Raised by a consumer whose client went away (as a closed event loop would)."""


@dataclass
class Job:
    index: int
    prompt: list[int]
    adapter: str | None
    max_tokens: int
    col: Collected = field(default_factory=Collected)
    seq: Sequence | None = None
    fate: str = "left alone"  # or "aborted" / "disconnected"
    broken: bool = False

    @property
    def params(self) -> SamplingParams:
        return SamplingParams(max_tokens=self.max_tokens, temperature=0.0, ignore_eos=True)


@dataclass
class Event:
    step: int
    action: Literal["submit", "abort", "disconnect"]
    job: int = -1  # for submit
    where: Where = "first"  # for abort / disconnect: which running slot


def make_plan(seed: int, vocab_text: list[int]) -> tuple[list[Job], list[Event]]:
    rng = random.Random(seed)
    jobs: list[Job] = []
    for i in range(14):
        kind = rng.choice(["short", "short", "medium", "long"])
        if kind == "long":  # long prompt: its decode grows the cache past 256
            length, max_tokens = rng.randint(200, 240), rng.randint(30, 60)
        elif kind == "medium":
            length, max_tokens = rng.randint(30, 90), rng.randint(10, 50)
        else:
            length, max_tokens = rng.randint(2, 20), rng.randint(4, 60)
        start = rng.randrange(len(vocab_text) - length)
        adapter = rng.choice(ADAPTERS) if i else None  # the starter uses the base model
        jobs.append(Job(i, vocab_text[start : start + length], adapter, max_tokens))
    jobs[0].max_tokens = 70  # the starter keeps the engine busy while the plan unfolds
    # The grower: an adapter row whose decode crosses the initial cache capacity early.
    jobs[1] = Job(1, vocab_text[:245], "alpha", 60)
    events = [Event(1, "submit", job=i) for i in range(1, 8)]
    events += [Event(rng.randint(2, 12), "submit", job=i) for i in range(8, 14)]
    for action in ("abort", "disconnect"):
        for where in ("first", "middle", "last"):
            events.append(Event(rng.randint(3, 25), action, where=where))
            events.append(Event(rng.randint(30, 60), action, where=where))  # after growth
    events.sort(key=lambda e: e.step)
    return jobs, events


class Director:
    """Fires scheduled events from the engine thread; records what happened."""

    def __init__(self, engine: Engine, jobs: list[Job], events: list[Event]) -> None:
        self.engine = engine
        self.jobs = jobs
        self.pending = list(events)
        self.by_seq: dict[int, Job] = {}
        self.victim_capacities: list[int] = []
        self.failed: list[BaseException] = []
        self.all_done = threading.Event()

    def consumer(self, job: Job) -> Any:
        def emit(out: StepOutput) -> None:
            if job.broken:
                raise Disconnected(f"job {job.index}'s client went away")
            job.col.emit(out)
            try:
                self.fire_due()
            except BaseException as exc:  # surfaced by the test, never lost in a thread
                self.failed.append(exc)
            submitted = [j for j in self.jobs if j.seq is not None]
            settled = all(j.col.done.is_set() or j.broken for j in submitted)
            if settled and not any(e.action == "submit" for e in self.pending):
                self.all_done.set()

        return emit

    def submit(self, job: Job) -> None:
        job.seq = Sequence(job.prompt, job.params, self.consumer(job), adapter=job.adapter)
        self.by_seq[job.seq.id] = job
        self.engine.submit(job.seq)

    def fire_due(self) -> None:
        while self.pending and self.pending[0].step <= self.engine.steps:
            event = self.pending.pop(0)
            if event.action == "submit":
                self.submit(self.jobs[event.job])
                continue
            candidates = [
                s
                for s in self.engine.running
                if self.by_seq[s.id].fate == "left alone" and self.by_seq[s.id].index > 1
            ]  # the starter keeps the engine stepping; the grower grows the cache
            if not candidates:
                continue
            pick = {"first": 0, "middle": len(candidates) // 2, "last": -1}[event.where]
            victim = self.by_seq[candidates[pick].id]
            self.victim_capacities.append(self.engine.runner.capacity)
            if event.action == "abort":
                victim.fate = "aborted"
                assert victim.seq is not None
                self.engine.abort(victim.seq)
            else:
                victim.fate = "disconnected"
                victim.broken = True  # its next output raises in the engine thread


@pytest.fixture(scope="module")
def chaos_engines(tiny_dir: Path, tiny_adapters: dict[str, Path]) -> Any:
    """(oracle engine, chaos engine factory) sharing the same weights and adapters."""
    engines: list[Engine] = []

    def build() -> Engine:
        model, tok = load_tiny(tiny_dir)
        engine = Engine(model, tok, EngineConfig(**CONFIG))
        for name in ("alpha", "beta"):
            _serve(engine, name, tiny_adapters[name])
        _serve(engine, "nan", tiny_adapters["alpha"], _poisoned(engine, tiny_adapters["alpha"]))
        engine.start()
        engines.append(engine)
        return engine

    yield build(), build
    for e in engines:
        e.shutdown()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_survivors_match_their_solo_oracle_under_chaos(
    chaos_engines: Any, tiny_dir: Path, seed: int
) -> None:
    oracle_engine, build = chaos_engines
    _, tok = load_tiny(tiny_dir)
    text = [t for line in CORPUS * 30 for t in tok(line + " ")["input_ids"]]
    jobs, events = make_plan(seed, text)
    oracle: dict[int, list[int]] = {}
    for job in jobs:
        if job.adapter != "nan":
            solo = generate(oracle_engine, [job.prompt], job.params, [job.adapter])[0]
            assert solo.final.finish_reason == "length"
            oracle[job.index] = solo.tokens

    engine: Engine = build()
    director = Director(engine, jobs, events)
    director.submit(jobs[0])
    assert director.all_done.wait(120), "the chaos run did not finish in time"
    assert not director.failed, director.failed
    assert engine.alive, engine.failure
    wait_until(lambda: not engine.running and not engine.waiting, "disconnected rows to leave")

    counts = {"left alone": 0, "aborted": 0, "disconnected": 0}
    for job in jobs:
        assert job.seq is not None, f"job {job.index} was never submitted"
        counts[job.fate] += 1
        if job.adapter == "nan":
            assert job.col.tokens == []
            if job.col.outputs:
                assert job.col.final.finish_reason == "error"
                assert job.col.final.error == NON_FINITE
            continue
        expected = oracle[job.index]
        if job.fate == "left alone":
            assert job.col.final.finish_reason == "length", f"job {job.index}: {job.col.final}"
            assert job.col.tokens == expected, f"job {job.index} diverged from its oracle"
        else:  # cut short (or finished first): what it got is its oracle's prefix
            got = job.col.tokens
            assert got == expected[: len(got)], f"job {job.index} diverged before its {job.fate}"
            if job.col.done.is_set() and job.col.final.finish_reason != "length":
                assert job.fate == "aborted" and job.col.final.finish_reason == "abort"
    assert counts["aborted"] >= 2 and counts["disconnected"] >= 2, counts
    assert engine.runner.capacity > INITIAL_CAPACITY
    assert any(c > INITIAL_CAPACITY for c in director.victim_capacities), "no cut after growth"
    # Nothing is left behind: slots, KV reservations and adapter pins are all released.
    assert not engine.running and not engine.waiting and engine.reserved == 0
    assert all(p == 0 for p in engine.slots.pins)
