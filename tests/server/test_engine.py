"""Engine correctness on a tiny random llama: our KV cache, chunked prefill, batching
and per-row LoRA must reproduce Hugging Face / PEFT reference outputs."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from hearth_server.engine.engine import EngineOverloaded
from hearth_server.engine.params import SamplingParams
from tests.server.conftest import generate, load_tiny, submit

PROMPTS = [
    "The capital of France is",
    "Robots learn to paint with bright colours and patient hands. Then",
    "def add(a, b):",
    "Hello",
]


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.005)


def _ids(tok: object, text: str) -> list[int]:
    return list(tok(text)["input_ids"])  # type: ignore[operator]


def _hf_greedy(model: object, prompt: list[int], n: int) -> list[int]:
    """Hugging Face greedy ``generate`` on the model's own device (CPU or CUDA)."""
    ids = torch.tensor([prompt], device=model.device)  # type: ignore[attr-defined]
    out = model.generate(  # type: ignore[attr-defined]
        ids,
        attention_mask=torch.ones_like(ids),
        max_new_tokens=n,
        min_new_tokens=n,
        do_sample=False,
        pad_token_id=0,
    )
    return list(out[0, len(prompt) :].tolist())


GREEDY = SamplingParams(max_tokens=12, temperature=0.0, ignore_eos=True)


def test_greedy_matches_hf_generate_alone_and_batched(make_engine, tiny_dir: Path) -> None:
    ref_model, tok = load_tiny(tiny_dir)
    prompts = [_ids(tok, p) for p in PROMPTS]
    expected = [_hf_greedy(ref_model, p, 12) for p in prompts]
    engine = make_engine()
    alone = [generate(engine, [p], GREEDY)[0].tokens for p in prompts]
    batched = [c.tokens for c in generate(engine, prompts, GREEDY)]
    assert alone == expected
    assert batched == expected


def test_chunked_prefill_gives_the_same_tokens(make_engine, tiny_dir: Path) -> None:
    _, tok = load_tiny(tiny_dir)
    long_prompt = _ids(tok, " ".join(PROMPTS * 3))
    assert len(long_prompt) > 40
    whole = generate(make_engine(max_model_len=256), [long_prompt], GREEDY)[0]
    assert whole.final.finish_reason == "length" and len(whole.tokens) == 12
    chunked_engine = make_engine(max_model_len=256, max_num_batched_tokens=7)
    chunked = generate(chunked_engine, [long_prompt, _ids(tok, "Hello")], GREEDY)[0].tokens
    assert chunked == whole.tokens


def _peft_greedy(tiny_dir: Path, adapter: Path, prompt: list[int], n: int) -> list[int]:
    from peft import PeftModel

    base, _ = load_tiny(tiny_dir)
    model = PeftModel.from_pretrained(base, str(adapter))
    return _hf_greedy(model, prompt, n)


@pytest.mark.parametrize("max_loras", [2, 3], ids=["all-slots", "gathered-slots"])
def test_lora_rows_match_peft_and_mixed_batches_are_invariant(
    make_engine, tiny_dir: Path, tiny_adapters: dict[str, Path], max_loras: int
) -> None:
    _, tok = load_tiny(tiny_dir)
    engine = make_engine(max_loras=max_loras)
    for name, path in tiny_adapters.items():
        engine.adapters.add(_info(name, path), engine.read_adapter(name, path))
    prompt = _ids(tok, PROMPTS[0])
    expected: dict[str | None, list[int]] = {
        None: _hf_greedy(load_tiny(tiny_dir)[0], prompt, 12),
        **{n: _peft_greedy(tiny_dir, p, prompt, 12) for n, p in tiny_adapters.items()},
    }
    assert expected["alpha"] != expected[None], "adapter should change the output"
    order: list[str | None] = [None, "alpha", "beta", "alpha", None, "beta"]
    mixed = generate(engine, [prompt] * len(order), GREEDY, order)
    assert [c.tokens for c in mixed] == [expected[a] for a in order]


def _info(name: str, path: Path) -> Any:
    from hearth_server.engine.adapters import AdapterInfo

    return AdapterInfo(name, str(path), path, 8, time.time())


def test_more_adapters_than_slots_wait_and_finish(
    make_engine, tiny_dir: Path, tiny_adapters: dict[str, Path]
) -> None:
    _, tok = load_tiny(tiny_dir)
    engine = make_engine(max_loras=1)
    for name, path in tiny_adapters.items():
        engine.adapters.add(_info(name, path), engine.read_adapter(name, path))
    prompt = _ids(tok, PROMPTS[1])
    solo = {a: generate(engine, [prompt], GREEDY, [a])[0].tokens for a in ("alpha", "beta")}
    both = generate(engine, [prompt, prompt], GREEDY, ["alpha", "beta"])
    assert [c.tokens for c in both] == [solo["alpha"], solo["beta"]]


def test_kv_budget_makes_requests_wait_instead_of_failing(make_engine, tiny_dir: Path) -> None:
    _, tok = load_tiny(tiny_dir)
    prompt = _ids(tok, PROMPTS[0])
    engine = make_engine(kv_cache_tokens=len(prompt) + 12)  # room for one request at a time
    cols = generate(engine, [prompt] * 3, GREEDY)
    assert all(c.final.finish_reason == "length" for c in cols)
    assert cols[0].tokens == cols[1].tokens == cols[2].tokens


def test_queue_bound_raises_overloaded(make_engine, tiny_dir: Path) -> None:
    _, tok = load_tiny(tiny_dir)
    engine = make_engine(max_waiting=2, max_num_seqs=1)
    slow = SamplingParams(max_tokens=100, temperature=0.0, ignore_eos=True)
    prompt = _ids(tok, "Hello")
    seqs = []
    with pytest.raises(EngineOverloaded):
        for _ in range(10):
            seqs.append(submit(engine, prompt, slow)[0])
    for s in seqs:
        engine.abort(s)


def test_abort_frees_the_slot(make_engine, tiny_dir: Path) -> None:
    _, tok = load_tiny(tiny_dir)
    engine = make_engine(max_num_seqs=1)
    long = SamplingParams(max_tokens=120, temperature=0.0, ignore_eos=True)
    seq, col = submit(engine, _ids(tok, "Hello"), long)
    wait_until(lambda: bool(col.outputs), "the first token")
    engine.abort(seq)
    assert col.done.wait(10)
    assert col.final.finish_reason == "abort"
    after = generate(engine, [_ids(tok, "Hello")], GREEDY)[0]
    assert after.final.finish_reason == "length"


def test_seed_reproducible_and_sampling_params_apply(make_engine, tiny_dir: Path) -> None:
    _, tok = load_tiny(tiny_dir)
    engine = make_engine()
    prompt = _ids(tok, PROMPTS[2])
    seeded = SamplingParams(
        max_tokens=16, temperature=1.0, top_p=0.9, top_k=50, min_p=0.01, seed=7, ignore_eos=True
    )
    a, b = generate(engine, [prompt, prompt], seeded)
    assert a.tokens == b.tokens
    other = SamplingParams(**{**seeded.__dict__, "seed": 8})
    assert generate(engine, [prompt], other)[0].tokens != a.tokens
    # A huge repetition penalty forbids repeating any token seen so far under greedy.
    rep = SamplingParams(max_tokens=10, temperature=0.0, repetition_penalty=2.0, ignore_eos=True)
    toks = generate(engine, [prompt], rep)[0].tokens
    plain = generate(
        engine, [prompt], SamplingParams(max_tokens=10, temperature=0.0, ignore_eos=True)
    )[0].tokens
    assert toks != plain


def test_stop_strings_and_stop_tokens(make_engine, tiny_dir: Path) -> None:
    _, tok = load_tiny(tiny_dir)
    engine = make_engine()
    prompt = _ids(tok, PROMPTS[0])
    free = generate(engine, [prompt], GREEDY)[0]
    assert len(free.text) > 4
    stop = free.text[2:4]
    cut = generate(
        engine,
        [prompt],
        SamplingParams(max_tokens=12, temperature=0.0, ignore_eos=True, stop=[stop]),
    )[0]
    assert cut.final.finish_reason == "stop" and cut.final.matched_stop == stop
    assert cut.text == free.text[: free.text.index(stop)]
    tok_stop = free.tokens[3]
    by_id = generate(
        engine, [prompt], SamplingParams(max_tokens=12, temperature=0.0, stop_token_ids=[tok_stop])
    )[0]
    assert by_id.final.finish_reason == "stop"
    assert by_id.tokens == free.tokens[: free.tokens.index(tok_stop) + 1]


def test_logprobs_are_consistent_with_greedy(make_engine, tiny_dir: Path) -> None:
    _, tok = load_tiny(tiny_dir)
    engine = make_engine()
    params = SamplingParams(max_tokens=5, temperature=0.0, ignore_eos=True, logprobs=3)
    col = generate(engine, [_ids(tok, PROMPTS[3])], params)[0]
    lps = [lp for o in col.outputs for lp in o.logprobs]
    assert len(lps) == 5
    for lp in lps:
        assert lp.top[0][0] == lp.token_id  # greedy picks the most likely token
        assert lp.logprob == pytest.approx(lp.top[0][1])
        assert [v for _, v in lp.top] == sorted((v for _, v in lp.top), reverse=True)


def test_long_prefill_is_chunked_and_running_streams_keep_going(
    make_engine, tiny_dir: Path
) -> None:
    _, tok = load_tiny(tiny_dir)
    engine = make_engine(max_num_batched_tokens=16)
    runner_params = SamplingParams(max_tokens=100, temperature=0.0, ignore_eos=True)
    seq_a, col_a = submit(engine, _ids(tok, "Hello"), runner_params)
    wait_until(lambda: len(col_a.outputs) >= 2, "two tokens of the running request")
    long_prompt = _ids(tok, " ".join(PROMPTS * 4))[:100]
    assert len(long_prompt) >= 64
    _, col_b = submit(engine, long_prompt, SamplingParams(max_tokens=1, temperature=0.0))
    before = len(col_a.outputs)
    assert col_b.done.wait(30)
    # B's 64+ prompt tokens take at least 4 chunked steps; A decodes in every one of them.
    assert len(col_a.outputs) - before >= 4
    engine.abort(seq_a)


def test_min_tokens_bans_stop_tokens_until_reached(make_engine, tiny_dir: Path) -> None:
    _, tok = load_tiny(tiny_dir)
    engine = make_engine()
    prompt = _ids(tok, PROMPTS[0])
    free = generate(engine, [prompt], GREEDY)[0].tokens
    first = free[0]
    stopped = generate(
        engine, [prompt], SamplingParams(max_tokens=12, temperature=0.0, stop_token_ids=[first])
    )[0]
    assert stopped.tokens == [first] and stopped.final.finish_reason == "stop"
    held = generate(
        engine,
        [prompt],
        SamplingParams(max_tokens=12, temperature=0.0, stop_token_ids=[first], min_tokens=3),
    )[0]
    assert len(held.tokens) >= 3 and first not in held.tokens[:3]
