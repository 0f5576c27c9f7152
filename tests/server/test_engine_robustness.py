"""Engine-level regressions for issue 8: every input that used to kill the engine thread
now fails only its own request (or is refused at submit), and a loop that dies anyway
fails every request at once and says why."""

from __future__ import annotations

import json
import shutil
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch

from hearth_server.engine.adapters import AdapterInfo
from hearth_server.engine.engine import (
    CRASH_ENV,
    Engine,
    EngineConfig,
    EngineDead,
    Sequence,
    crash_after_steps_from_env,
)
from hearth_server.engine.lora import AdapterError, LoRAWeights
from hearth_server.engine.params import ParamError, SamplingParams, StepOutput
from hearth_server.engine.runner import Chunk
from hearth_server.engine.sampler import NON_FINITE
from tests.server.conftest import Collected, generate, load_tiny, submit
from tests.server.test_engine import PROMPTS, _ids, wait_until


def greedy(n: int) -> SamplingParams:
    return SamplingParams(max_tokens=n, temperature=0.0, ignore_eos=True)


def _long_prompt(tok: Any, n: int) -> list[int]:
    ids = _ids(tok, " ".join(PROMPTS * 12))
    assert len(ids) >= n
    return ids[:n]


# -- reproduction 1: the cache grows inside a step, then a finish moves a slot ---------


def test_cache_grown_in_a_step_can_be_moved_and_cleared_from_any_thread(
    make_engine: Any, tiny_dir: Path
) -> None:
    engine: Engine = make_engine(max_model_len=512)
    runner = engine.runner
    assert runner.capacity == 256
    # A prefill past the initial capacity re-allocates the cache inside the step...
    runner.step([], [Chunk(1, list(range(300)), 0, -1)], 2)
    assert runner.capacity == 512
    # ...and moving or clearing a slot from this (non-inference) thread still works.
    runner.move_slot(1, 0, 300)
    assert torch.equal(runner.k_cache[0][0, :, :300], runner.k_cache[0][1, :, :300])
    runner.clear_slot(1, 300)
    assert not runner.k_cache[0][1].any()


class Trigger:
    """A consumer that runs ``action`` on the engine thread when its request finishes,
    so the next engine iteration sees the action: deterministic, no sleeps."""

    def __init__(self, action: Any = None) -> None:
        self.col = Collected()
        self.action = action

    def emit(self, out: StepOutput) -> None:
        self.col.emit(out)
        if out.finished and self.action is not None:
            self.action()


def test_long_sequence_then_out_of_order_finish_and_abort(make_engine: Any, tiny_dir: Path) -> None:
    _, tok = load_tiny(tiny_dir)
    engine: Engine = make_engine(max_model_len=512, max_num_batched_tokens=512)
    hello = _ids(tok, "Hello")
    long = _long_prompt(tok, 250)  # 250 + 30 tokens: the cache grows past 256 mid-decode
    plan = [(long, 30), (hello, 200), (hello, 120), (hello, 250)]
    solo = [generate(engine, [p], greedy(n))[0].tokens for p, n in plan]

    aborted = threading.Event()
    seqs: list[Sequence] = []

    def abort_second() -> None:  # runs when the long one finishes: first slot, not last
        engine.abort(seqs[1])
        aborted.set()

    consumers = [Trigger(abort_second), Trigger(), Trigger(), Trigger()]
    seqs.extend(Sequence(p, greedy(n), c.emit) for (p, n), c in zip(plan, consumers, strict=True))
    for s in seqs:
        engine.submit(s)
    for c in consumers:
        assert c.col.done.wait(60), "a request never finished"
    assert aborted.is_set() and engine.alive, engine.failure
    outs = [c.col for c in consumers]
    assert outs[0].final.finish_reason == "length" and outs[0].tokens == solo[0]
    assert outs[1].final.finish_reason == "abort"
    assert outs[1].tokens == solo[1][: len(outs[1].tokens)]
    assert outs[2].tokens == solo[2] and outs[3].tokens == solo[3]
    assert engine.runner.capacity == 512
    assert generate(engine, [long], greedy(30))[0].tokens == solo[0]


# -- reproduction 2: seeds outside 64 bits --------------------------------------------


def test_seeds_must_fit_64_bits_including_derived_ones(make_engine: Any, tiny_dir: Path) -> None:
    _, tok = load_tiny(tiny_dir)
    engine: Engine = make_engine()
    prompt = _ids(tok, PROMPTS[2])
    edge = SamplingParams(max_tokens=4, temperature=1.0, seed=2**63 - 1, ignore_eos=True)
    low = replace(edge, seed=-(2**63))
    for params in (edge, low):
        assert generate(engine, [prompt], params)[0].final.finish_reason == "length"
    derived = 2**63 - 1 + 1  # seed + choice index, as n > 1 derives it
    for seed in (2**64, 2**63, -(2**63) - 1, derived):
        with pytest.raises(ParamError) as err:
            submit(engine, prompt, replace(edge, seed=seed))
        assert err.value.param == "seed" and "64-bit" in str(err.value)
    assert engine.alive and engine.num_waiting == 0


# -- reproduction 3: tiny temperatures -------------------------------------------------


def test_tiny_temperature_samples_without_nan(make_engine: Any, tiny_dir: Path) -> None:
    _, tok = load_tiny(tiny_dir)
    engine: Engine = make_engine()
    prompt = _ids(tok, PROMPTS[0])
    tiny = SamplingParams(max_tokens=8, temperature=1e-45, seed=3, ignore_eos=True)
    col = generate(engine, [prompt], tiny)[0]
    assert col.final.finish_reason == "length" and len(col.tokens) == 8
    assert engine.alive


# -- reproduction 4: out-of-vocabulary token ids ---------------------------------------


@pytest.mark.parametrize(
    ("prompt", "params", "param"),
    [
        ([5], SamplingParams(stop_token_ids=[1_000_000_000], min_tokens=3), "stop_token_ids"),
        ([5], SamplingParams(stop_token_ids=[-1]), "stop_token_ids"),
        ([5, 10**9], SamplingParams(), "prompt"),
        ([-3], SamplingParams(), "prompt"),
        ([], SamplingParams(), "prompt"),
        ([5] * 128, SamplingParams(), "prompt"),  # no room left in a 128-token context
        ([5], SamplingParams(max_tokens=10**6), "max_tokens"),  # beyond the KV budget
        ([5], SamplingParams(temperature=float("nan")), "temperature"),
        ([5], SamplingParams(top_k=2.5), "top_k"),  # type: ignore[arg-type]
    ],
)
def test_requests_the_loop_cannot_serve_are_refused_at_submit(
    make_engine: Any, prompt: list[int], params: SamplingParams, param: str
) -> None:
    engine: Engine = make_engine(kv_cache_tokens=4096)
    with pytest.raises(ParamError) as err:
        submit(engine, prompt, params)
    assert err.value.param == param and param in str(err.value)
    assert isinstance(err.value, ValueError)
    assert engine.alive and engine.num_waiting == 0


def test_stop_token_at_the_vocabulary_edge_still_works(make_engine: Any, tiny_dir: Path) -> None:
    _, tok = load_tiny(tiny_dir)
    engine: Engine = make_engine()
    last = engine.vocab_size - 1
    params = SamplingParams(max_tokens=6, temperature=0.0, stop_token_ids=[last], min_tokens=3)
    col = generate(engine, [_ids(tok, "Hello")], params)[0]
    assert col.final.finish_reason in ("length", "stop") and engine.alive


# -- reproduction 5: non-finite logits (a poisoned adapter) -----------------------------


def _poisoned(engine: Engine, like: Path) -> LoRAWeights:
    """Adapter weights with NaN in every B, added behind load_adapter's checks (which
    refuse such files) to prove the sampler contains what slips through anyway."""
    good = engine.read_adapter("nan", like)
    tensors = {m: (a, torch.full_like(b, float("nan"))) for m, (a, b) in good.tensors.items()}
    return LoRAWeights("nan", like, good.rank, tensors)


def _serve(engine: Engine, name: str, path: Path, weights: LoRAWeights | None = None) -> None:
    info = AdapterInfo(name, str(path), path, 8, time.time())
    engine.adapters.add(info, weights or engine.read_adapter(name, path))


def test_non_finite_logits_fail_only_that_request(
    make_engine: Any, tiny_dir: Path, tiny_adapters: dict[str, Path]
) -> None:
    _, tok = load_tiny(tiny_dir)
    engine: Engine = make_engine(max_loras=2, max_cpu_loras=4)
    _serve(engine, "alpha", tiny_adapters["alpha"])
    _serve(engine, "nan", tiny_adapters["alpha"], _poisoned(engine, tiny_adapters["alpha"]))
    prompts = [_ids(tok, p) for p in PROMPTS]
    order: list[str | None] = [None, "nan", "alpha", "nan"]
    solo = {
        (a, i): generate(engine, [prompts[i]], greedy(10), [a])[0].tokens
        for i, a in enumerate(order)
        if a != "nan"
    }
    mixed = generate(engine, prompts, greedy(10), order)
    for i, (a, col) in enumerate(zip(order, mixed, strict=True)):
        if a == "nan":
            assert col.final.finish_reason == "error" and col.final.error == NON_FINITE
            assert col.tokens == []
        else:
            assert col.tokens == solo[(a, i)], f"row {i} ({a}) was disturbed"
    assert engine.alive
    # The poisoned rows' cache slots are reused cleanly by the next batch.
    again = generate(engine, prompts[:3], greedy(10), [None, "alpha", None])
    assert again[0].tokens == solo[(None, 0)] and again[1].tokens != []


def test_poisoned_rows_do_not_leak_through_batched_lora_padding(
    make_engine: Any, tiny_dir: Path, tiny_adapters: dict[str, Path]
) -> None:
    """Short adapter runs share a padded bmm whose padding rows point at row 0; a NaN
    adapter's padding must add exactly nothing there (0 * NaN would be NaN)."""
    _, tok = load_tiny(tiny_dir)
    engine: Engine = make_engine(max_loras=2, max_cpu_loras=4)
    _serve(engine, "alpha", tiny_adapters["alpha"])
    _serve(engine, "nan", tiny_adapters["alpha"], _poisoned(engine, tiny_adapters["alpha"]))
    prompt = _ids(tok, PROMPTS[3])
    order: list[str | None] = [None, "alpha", "alpha", "alpha"]  # row 0 is the base row
    solo = {a: generate(engine, [prompt], greedy(40), [a])[0].tokens for a in (None, "alpha")}
    cols = [submit(engine, prompt, greedy(40), a)[1] for a in order]
    wait_until(lambda: all(len(c.outputs) >= 2 for c in cols), "every row to be decoding")
    # A one-token prompt through the poisoned adapter: a 1-row run next to a 3-row one.
    poisoned = []
    for _ in range(3):  # one at a time, so each is a 1-row run
        poisoned.append(submit(engine, [prompt[0]], greedy(5), "nan")[1])
        assert poisoned[-1].done.wait(60)
    for col in cols:
        assert col.done.wait(60)
    assert all(p.final.error == NON_FINITE for p in poisoned)
    assert [c.tokens for c in cols] == [solo[a] for a in order]


def _copy_adapter(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _edit_tensors(path: Path, edit: Any) -> None:
    from safetensors.torch import load_file, save_file

    file = path / "adapter_model.safetensors"
    tensors = load_file(str(file))
    edit(tensors)
    save_file(tensors, str(file))


def _edit_config(path: Path, **changes: Any) -> None:
    file = path / "adapter_config.json"
    cfg = json.loads(file.read_text())
    cfg.update(changes)
    file.write_text(json.dumps(cfg))


def _first_b(tensors: dict[str, torch.Tensor]) -> str:
    return next(k for k in sorted(tensors) if "lora_B" in k)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("nan_weight", "non-finite"),
        ("inf_weight", "non-finite"),
        ("config_rank_larger", "rank r=8"),
        ("config_rank_smaller", "rank r=4"),
        ("alpha_overflows", "non-finite"),
        ("alpha_nan", "lora_alpha must be a finite number"),
        ("rank_bool", "r must be a positive integer"),
    ],
)
def test_load_adapter_refuses_non_finite_weights_and_rank_mismatch(
    make_engine: Any, tiny_adapters: dict[str, Path], tmp_path: Path, case: str, message: str
) -> None:
    engine: Engine = make_engine()
    path = _copy_adapter(tiny_adapters["beta"], tmp_path / case)  # rank 4
    if case == "nan_weight":
        _edit_tensors(path, lambda t: t[_first_b(t)].view(-1).__setitem__(0, float("nan")))
    elif case == "inf_weight":
        _edit_tensors(path, lambda t: t[_first_b(t)].view(-1).__setitem__(3, float("inf")))
    elif case == "config_rank_larger":
        _edit_config(path, r=8, lora_alpha=8)
    elif case == "config_rank_smaller":
        path = _copy_adapter(tiny_adapters["alpha"], tmp_path / "alpha-copy")  # rank 8
        _edit_config(path, r=4, lora_alpha=4)
    elif case == "alpha_overflows":
        _edit_config(path, lora_alpha=1e300)
    elif case == "alpha_nan":
        (path / "adapter_config.json").write_text(
            (path / "adapter_config.json")
            .read_text()
            .replace('"lora_alpha": 4', '"lora_alpha": NaN')
        )
    elif case == "rank_bool":
        _edit_config(path, r=True)
    with pytest.raises(AdapterError) as err:
        engine.read_adapter(case, path)
    assert isinstance(err.value, ValueError)
    assert message in str(err.value)


# -- a broken consumer is a disconnect, not an engine failure ---------------------------


def test_a_consumer_that_raises_loses_only_its_request(make_engine: Any, tiny_dir: Path) -> None:
    _, tok = load_tiny(tiny_dir)
    engine: Engine = make_engine()
    prompt = _ids(tok, PROMPTS[1])
    expected = generate(engine, [prompt], greedy(20))[0].tokens
    calls = 0

    def broken(out: StepOutput) -> None:  # e.g. its event loop closed under it
        nonlocal calls
        calls += 1
        if calls == 3:
            raise RuntimeError("Event loop is closed")

    engine.submit(Sequence(prompt, greedy(20), broken))
    neighbour = generate(engine, [prompt], greedy(20))[0]
    assert neighbour.tokens == expected
    wait_until(lambda: not engine.running, "the broken request to leave the batch")
    assert calls == 3 and engine.alive


# -- reproduction 6 (engine part): a dead loop fails everyone at once ---------------------


def test_crash_hook_fails_running_and_waiting_requests_at_once(
    make_engine: Any, tiny_dir: Path
) -> None:
    _, tok = load_tiny(tiny_dir)
    engine: Engine = make_engine(crash_after_steps=2, max_num_seqs=1)
    failures: list[str] = []
    engine.on_failure = failures.append
    prompt = _ids(tok, "Hello")
    cols = [submit(engine, prompt, greedy(50))[1] for _ in range(4)]  # 1 runs, 3 wait
    expected = (
        f"engine failed: InjectedEngineFault: injected engine failure after 2 steps ({CRASH_ENV})"
    )
    for col in cols:
        assert col.done.wait(30), "a request was left hanging by the dead engine"
        assert col.final.finish_reason == "error" and col.final.error == expected
    assert len(cols[0].tokens) == 2 and all(not c.tokens for c in cols[1:])
    assert engine.wait_stopped(10)
    assert not engine.alive and engine.steps == 2
    assert engine.failure == expected.removeprefix("engine failed: ")
    assert failures == [engine.failure]
    assert engine.num_waiting == 0
    with pytest.raises(EngineDead, match="engine failed: InjectedEngineFault"):
        submit(engine, prompt, greedy(5))


class _Interrupt(BaseException):
    """Not an Exception: no per-request guard may swallow it, so it ends the loop."""


def test_requests_still_in_the_inbox_fail_when_the_loop_dies(
    make_engine: Any, tiny_dir: Path
) -> None:
    _, tok = load_tiny(tiny_dir)
    engine: Engine = make_engine()
    prompt = _ids(tok, "Hello")
    gate, held = threading.Event(), threading.Event()
    running = Collected()

    def first_consumer(out: StepOutput) -> None:
        running.emit(out)
        held.set()  # the engine thread is inside step 1, before its next inbox drain
        assert gate.wait(30)
        raise _Interrupt("interrupted while emitting")

    engine.submit(Sequence(prompt, greedy(50), first_consumer))
    assert held.wait(30), "the first step never emitted"
    undrained = [submit(engine, prompt, greedy(50))[1] for _ in range(3)]
    gate.set()
    for col in undrained:
        assert col.done.wait(30), "a queued request was left hanging by the dead engine"
        assert col.final.finish_reason == "error"
        assert col.final.error == "engine failed: _Interrupt: interrupted while emitting"
    assert engine.wait_stopped(10) and not engine.alive


def test_clean_shutdown_fails_what_is_left_and_reports_no_failure(
    tiny_dir: Path,
) -> None:
    model, tok = load_tiny(tiny_dir)
    engine = Engine(model, tok, EngineConfig(max_model_len=128, max_num_seqs=1))
    engine.start()
    _, col = submit(engine, _ids(tok, "Hello"), greedy(100))
    _, queued = submit(engine, _ids(tok, "Hello"), greedy(100))
    wait_until(lambda: bool(col.outputs), "the first token")
    engine.shutdown()
    for c in (col, queued):
        assert c.done.wait(10) and c.final.finish_reason == "error"
        assert c.final.error == "engine is not running"
    assert not engine.alive and engine.failure is None


def test_crash_hook_reads_its_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CRASH_ENV, raising=False)
    assert EngineConfig().crash_after_steps is None
    monkeypatch.setenv(CRASH_ENV, "7")
    assert EngineConfig().crash_after_steps == 7
    for bad in ("0", "-2", "soon"):
        monkeypatch.setenv(CRASH_ENV, bad)
        with pytest.raises(ValueError, match=CRASH_ENV):
            crash_after_steps_from_env()
