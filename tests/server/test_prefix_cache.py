"""Prefix caching: the store on its own, then the engine on the tiny random llama.

Every engine test runs the same requests on an engine without the cache (the oracle,
itself checked against Hugging Face in test_engine.py) and requires identical greedy
tokens, plus the reuse it expects in ``cached_tokens``.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import pytest

from hearth_server.engine.adapters import AdapterInfo
from hearth_server.engine.engine import PREFIX_BLOCK_TOKENS, Engine
from hearth_server.engine.params import SamplingParams
from hearth_server.engine.prefix_cache import PrefixCache
from tests.server.conftest import Collected, generate, submit
from tests.server.test_engine import wait_until

B = PREFIX_BLOCK_TOKENS
GREEDY = SamplingParams(max_tokens=8, temperature=0.0, ignore_eos=True)

# -- the store, pure ------------------------------------------------------------------------


def _tokens(n: int, start: int = 0) -> list[int]:
    return list(range(start, start + n))


def test_match_returns_the_longest_block_prefix_but_never_the_last_token() -> None:
    cache: PrefixCache[str] = PrefixCache(4, 100)
    prompt = _tokens(12)
    assert cache.match(None, prompt) == []
    assert cache.insert(None, prompt, 0, ["b0", "b1", "b2"]) == 3
    assert cache.match(None, prompt) == ["b0", "b1"]  # block 2 holds the last token
    assert cache.match(None, [*prompt, 99]) == ["b0", "b1", "b2"]
    assert cache.match(None, [*prompt[:6], 99, 99, 99]) == ["b0"]
    assert cache.match(None, [99, *prompt]) == []
    assert cache.stats.hit_tokens == 4 * (2 + 3 + 1)


def test_namespaces_never_share_blocks() -> None:
    cache: PrefixCache[str] = PrefixCache(4, 100)
    prompt = _tokens(9)
    cache.insert(None, prompt, 0, ["base0", "base1"])
    cache.insert(("alpha", 1), prompt, 0, ["alpha0"])
    assert cache.match(("alpha", 1), prompt) == ["alpha0"]
    assert cache.match(("alpha", 2), prompt) == []
    assert cache.match(None, prompt) == ["base0", "base1"]
    assert cache.drop(lambda ns: isinstance(ns, tuple) and ns[0] == "alpha") == 1
    assert cache.match(("alpha", 1), prompt) == []
    assert cache.match(None, prompt) == ["base0", "base1"]
    assert cache.num_blocks == 2


def test_insert_extends_a_cached_prefix_and_keeps_existing_blocks() -> None:
    cache: PrefixCache[str] = PrefixCache(4, 100)
    prompt = _tokens(13)
    cache.insert(None, prompt, 0, ["old0"])
    assert cache.cached_blocks(None, prompt) == 1
    assert cache.insert(None, prompt, 1, ["new1", "new2"]) == 2
    # A racing request that computed the same blocks does not replace them.
    assert cache.insert(None, prompt, 0, ["dup0", "dup1", "dup2"]) == 0
    assert cache.match(None, prompt) == ["old0", "new1", "new2"]
    # A prefix evicted meanwhile: nothing to attach to.
    assert cache.insert(None, _tokens(13, start=50), 1, ["orphan"]) == 0


def test_eviction_takes_least_recently_used_leaves_and_respects_the_budget() -> None:
    cache: PrefixCache[str] = PrefixCache(2, 8)  # 4 blocks
    a, b = _tokens(7), _tokens(7, start=100)
    cache.insert(None, a, 0, ["a0", "a1", "a2"])
    cache.insert(None, b, 0, ["b0"])
    cache.match(None, a)  # a is now newer than b
    cache.insert(None, [*b[:2], 7, 7, 7], 1, ["c1"])  # full: evicts a's leaf a2, not b0
    assert cache.num_blocks == 4
    assert cache.match(None, [*a, 0]) == ["a0", "a1"]
    assert cache.match(None, [*b[:2], 7, 7, 7]) == ["b0", "c1"]
    cache.insert(None, _tokens(5, start=200), 0, ["d0", "d1"])
    assert cache.num_blocks == 4 and cache.stats.evicted_blocks == 3
    # a was least recently used: its leaf went first, then its root (never a root
    # before its children, so every cached block keeps its whole prefix).
    assert cache.match(None, [*a, 0]) == []
    assert cache.match(None, [*b[:2], 7, 7, 7]) == ["b0", "c1"]
    assert cache.match(None, _tokens(5, start=200)) == ["d0", "d1"]


def test_a_path_longer_than_the_budget_is_stored_in_part() -> None:
    cache: PrefixCache[str] = PrefixCache(2, 6)  # 3 blocks
    prompt = _tokens(12)
    assert cache.insert(None, prompt, 0, [f"p{i}" for i in range(6)]) == 3
    assert cache.match(None, prompt) == ["p0", "p1", "p2"]
    zero: PrefixCache[str] = PrefixCache(2, 1)  # smaller than a block: stores nothing
    assert zero.insert(None, prompt, 0, ["x"]) == 0 and zero.match(None, prompt) == []


# -- the engine -------------------------------------------------------------------------------


def _random_ids(rng: random.Random, n: int, vocab: int) -> list[int]:
    return [rng.randrange(3, vocab) for _ in range(n)]  # 0-2 are special tokens


def _run(engine: Engine, prompt: list[int], adapter: str | None = None) -> Collected:
    col = generate(engine, [prompt], GREEDY, [adapter])[0]
    assert col.final.finish_reason == "length", col.final.error
    return col


def _cached(col: Collected) -> int:
    return col.final.cached_tokens


def _full_blocks(n: int) -> int:
    return n // B * B


def _load(engine: Engine, name: str, path: Path) -> None:
    engine.adapters.add(
        AdapterInfo(name, str(path), path, 8, time.time()), engine.read_adapter(name, path)
    )


def _unload(engine: Engine, name: str) -> None:
    assert engine.adapters.remove(name)
    engine.release_adapter(name)


@pytest.fixture
def engines(make_engine) -> tuple[Engine, Engine]:
    """(without the cache, with it), same model and limits."""
    return make_engine(max_lora_rank=8), make_engine(max_lora_rank=8, prefix_cache_tokens=2048)


def test_shared_system_prompt_is_reused_and_output_is_identical(engines: Any) -> None:
    off, on = engines
    rng = random.Random(1)
    system = _random_ids(rng, 3 * B + 5, on.vocab_size)
    prompts = [system + _random_ids(rng, 9, on.vocab_size) for _ in range(4)]
    reused = []
    for prompt in prompts:
        with_cache = _run(on, prompt)
        assert with_cache.tokens == _run(off, prompt).tokens
        reused.append(_cached(with_cache))
    assert reused == [0] + [_full_blocks(len(system))] * 3
    # The very same prompt again: all of it but the last token's block.
    again = _run(on, prompts[0])
    assert _cached(again) == _full_blocks(len(prompts[0]) - 1)
    assert again.tokens == _run(off, prompts[0]).tokens
    assert on.prefix_cache is not None and on.prefix_cache.stats.hit_tokens == sum(reused) + (
        _cached(again)
    )


def test_growing_conversation_reuses_every_earlier_turn(engines: Any) -> None:
    off, on = engines
    rng = random.Random(2)
    conversation = _random_ids(rng, 20, on.vocab_size)
    previous = 0  # the last turn's prompt length: its full blocks were stored
    for turn in range(4):
        with_cache = _run(on, conversation)
        assert with_cache.tokens == _run(off, conversation).tokens, f"turn {turn}"
        assert _cached(with_cache) == _full_blocks(previous), f"turn {turn}"
        previous = len(conversation)
        conversation = conversation + with_cache.tokens + _random_ids(rng, 6, on.vocab_size)


def test_requests_admitted_together_all_reuse_a_cached_prefix(engines: Any) -> None:
    off, on = engines
    rng = random.Random(3)
    system = _random_ids(rng, 4 * B, on.vocab_size)
    prompts = [system + _random_ids(rng, 5, on.vocab_size) for _ in range(6)]
    first = _run(on, prompts[0])
    together = generate(on, prompts, GREEDY)
    expected = [c.tokens for c in generate(off, prompts, GREEDY)]
    assert [c.tokens for c in together] == expected
    assert first.tokens == expected[0]
    assert [_cached(c) for c in together] == [len(system)] * len(prompts)


def test_no_reuse_across_base_model_and_adapters(
    engines: Any, tiny_adapters: dict[str, Path]
) -> None:
    off, on = engines
    for engine in engines:
        for name, path in tiny_adapters.items():
            _load(engine, name, path)
    prompt = _random_ids(random.Random(4), 3 * B + 3, on.vocab_size)
    order: list[str | None] = [None, "alpha", "beta", "alpha", None, "beta"]
    runs = [_run(on, prompt, adapter) for adapter in order]
    expected = {a: _run(off, prompt, a).tokens for a in (None, "alpha", "beta")}
    assert expected["alpha"] != expected[None] != expected["beta"], "adapters must matter"
    assert [r.tokens for r in runs] == [expected[a] for a in order]
    hit = _full_blocks(len(prompt) - 1)
    assert [_cached(r) for r in runs] == [0, 0, 0, hit, hit, hit]


def test_an_adapter_reloaded_with_new_weights_does_not_reuse_old_prefixes(
    engines: Any, tiny_adapters: dict[str, Path]
) -> None:
    off, on = engines
    prompt = _random_ids(random.Random(5), 3 * B + 3, on.vocab_size)
    _load(on, "tuned", tiny_adapters["alpha"])
    assert _cached(_run(on, prompt, "tuned")) == 0
    assert _cached(_run(on, prompt, "tuned")) > 0
    _unload(on, "tuned")
    _load(on, "tuned", tiny_adapters["beta"])  # same name, other weights
    _load(off, "beta", tiny_adapters["beta"])
    reloaded = _run(on, prompt, "tuned")
    assert _cached(reloaded) == 0
    assert reloaded.tokens == _run(off, prompt, "beta").tokens
    assert _cached(_run(on, prompt, "tuned")) > 0


def test_unloading_an_adapter_frees_its_prefixes(
    make_engine, tiny_adapters: dict[str, Path]
) -> None:
    engine = make_engine(max_lora_rank=8, prefix_cache_tokens=2048)
    prompt = _random_ids(random.Random(6), 3 * B + 3, engine.vocab_size)
    _run(engine, prompt)
    _load(engine, "alpha", tiny_adapters["alpha"])
    _run(engine, prompt, "alpha")
    cache = engine.prefix_cache
    assert cache is not None and cache.num_blocks == 2 * (len(prompt) // B)
    _unload(engine, "alpha")
    _run(engine, prompt)  # the engine thread has handled the unload before this one ends
    assert cache.num_blocks == len(prompt) // B


def test_eviction_under_a_tiny_budget_never_fails_a_request(
    make_engine, tiny_adapters: dict[str, Path]
) -> None:
    budget = 3 * B
    on = make_engine(max_lora_rank=8, prefix_cache_tokens=budget, max_num_batched_tokens=40)
    off = make_engine(max_lora_rank=8)
    for engine in (on, off):
        _load(engine, "alpha", tiny_adapters["alpha"])
    rng = random.Random(7)
    systems = [_random_ids(rng, 2 * B + 4, on.vocab_size) for _ in range(3)]
    prompts = [rng.choice(systems) + _random_ids(rng, rng.randrange(1, 40), 300) for _ in range(30)]
    adapters: list[str | None] = [rng.choice([None, "alpha"]) for _ in prompts]
    for wave in range(2):  # the second wave finds some prefixes of the first
        cols = generate(on, prompts, GREEDY, adapters)
        assert all(c.final.finish_reason == "length" for c in cols), f"wave {wave}"
        assert [c.tokens for c in cols] == [
            c.tokens for c in generate(off, prompts, GREEDY, adapters)
        ]
    cache = on.prefix_cache
    assert cache is not None
    assert cache.num_tokens <= budget
    assert cache.stats.evicted_blocks > 0 and cache.stats.hit_tokens > 0


def test_aborted_requests_leave_clean_slots_for_the_next_ones(engines: Any) -> None:
    off, on = engines
    rng = random.Random(10)
    system = _random_ids(rng, 4 * B, on.vocab_size)
    prompts = [system + _random_ids(rng, 7, on.vocab_size) for _ in range(8)]
    _run(on, prompts[0])
    long = SamplingParams(max_tokens=60, temperature=0.0, ignore_eos=True)
    doomed = [submit(on, p, long) for p in prompts[:4]]
    for seq, _ in doomed[::2]:  # some while queued or prefilling, some while decoding
        on.abort(seq)
    wait_until(lambda: all(len(c.outputs) >= 2 for _, c in doomed[1::2]), "decoding")
    for seq, _ in doomed[1::2]:
        on.abort(seq)
    for _, col in doomed[1::2]:  # a request aborted while queued hears nothing more
        assert col.done.wait(60) and col.final.finish_reason == "abort"
    after = generate(on, prompts, GREEDY)
    assert [c.tokens for c in after] == [c.tokens for c in generate(off, prompts, GREEDY)]
    assert all(_cached(c) == len(system) for c in after)


def test_a_failing_copy_costs_the_cache_never_the_request(
    engines: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    off, on = engines
    rng = random.Random(9)
    prompt, other = (_random_ids(rng, 3 * B + 3, on.vocab_size) for _ in range(2))
    assert _cached(_run(on, prompt)) == 0

    def out_of_memory(*args: object) -> None:
        raise RuntimeError("CUDA out of memory (simulated)")

    monkeypatch.setattr(on.runner, "write_blocks", out_of_memory)
    reply = _run(on, prompt)  # the hit cannot be copied in: the prompt is prefilled
    assert _cached(reply) == 0 and reply.tokens == _run(off, prompt).tokens
    monkeypatch.setattr(on.runner, "read_blocks", out_of_memory)
    assert _run(on, other).tokens == _run(off, other).tokens
    assert on.prefix_cache is not None and on.prefix_cache.num_blocks == 0  # it gave way
    assert on.alive


def test_cached_tokens_is_zero_without_the_cache(make_engine) -> None:
    engine = make_engine()
    prompt = _random_ids(random.Random(8), 3 * B, engine.vocab_size)
    assert engine.prefix_cache is None
    assert [_cached(_run(engine, prompt)) for _ in range(2)] == [0, 0]


# -- usage over HTTP (tiny model) ------------------------------------------------------------

SYSTEM = "You answer briefly. Robots learn to paint with bright colours and patient hands. " * 2


@pytest.fixture
def client(make_engine) -> Any:
    from fastapi.testclient import TestClient

    from hearth_server.api.app import build_app
    from hearth_server.config import ServerSettings

    engine = make_engine(prefix_cache_tokens=2048)
    app = build_app(ServerSettings(model="/models/tiny", served_model_name="tiny"), engine=engine)
    with TestClient(app) as c:
        yield c


def _chat(question: str, **extra: Any) -> dict[str, Any]:
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]
    return {"model": "tiny", "messages": messages, "max_tokens": 4, "temperature": 0, **extra}


def _sse(resp: Any) -> list[dict[str, Any]]:
    import json

    lines = [ln.removeprefix("data: ") for ln in resp.text.splitlines() if ln.startswith("data: ")]
    return [json.loads(ln) for ln in lines if ln != "[DONE]"]


def test_openai_usage_reports_cached_tokens(client: Any) -> None:
    first = client.post("/v1/chat/completions", json=_chat("Hello")).json()["usage"]
    assert first["prompt_tokens_details"] == {"cached_tokens": 0}
    second = client.post("/v1/chat/completions", json=_chat("Hi")).json()
    cached = second["usage"]["prompt_tokens_details"]["cached_tokens"]
    assert 0 < cached < second["usage"]["prompt_tokens"] and cached % B == 0
    stream = client.post(
        "/v1/chat/completions",
        json=_chat("Hi", stream=True, stream_options={"include_usage": True}),
    )
    usage = _sse(stream)[-1]["usage"]
    assert usage["prompt_tokens_details"]["cached_tokens"] >= cached
    # Completions: the same prompt text again.
    body = {"model": "tiny", "prompt": SYSTEM, "max_tokens": 2, "temperature": 0}
    client.post("/v1/completions", json=body)
    again = client.post("/v1/completions", json=body).json()["usage"]
    assert again["prompt_tokens_details"]["cached_tokens"] == _full_blocks(
        again["prompt_tokens"] - 1
    )
    streamed = _sse(
        client.post(
            "/v1/completions",
            json={**body, "stream": True, "stream_options": {"include_usage": True}},
        )
    )[-1]["usage"]
    assert streamed["prompt_tokens_details"] == again["prompt_tokens_details"]


def test_anthropic_usage_reports_cache_reads(client: Any) -> None:
    def message(question: str, **extra: Any) -> Any:
        body = {
            "model": "tiny",
            "system": SYSTEM,
            "messages": [{"role": "user", "content": question}],
            "max_tokens": 4,
            "temperature": 0,
            **extra,
        }
        return client.post("/v1/messages", json=body)

    first = message("Hello").json()["usage"]
    assert first["cache_read_input_tokens"] == 0
    second = message("Hi").json()["usage"]
    total = second["input_tokens"] + second["cache_read_input_tokens"]
    assert second["cache_read_input_tokens"] > 0 and second["cache_creation_input_tokens"] == 0
    events = _sse(message("Hi", stream=True))
    final = next(e for e in events if e["type"] == "message_delta")["usage"]
    assert final["input_tokens"] + final["cache_read_input_tokens"] == total
    assert final["cache_read_input_tokens"] > 0


def test_metrics_count_prefix_cache_hits(client: Any) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    def samples() -> dict[str, float]:
        text = client.get("/metrics").text
        return {
            s.name: s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if s.name.startswith("hearth:prefix_cache")
        }

    assert samples()["hearth:prefix_cache_hits_total"] == 0
    usages = [client.post("/v1/chat/completions", json=_chat("Hi")).json()["usage"] for _ in "ab"]
    after = samples()
    cached = usages[1]["prompt_tokens_details"]["cached_tokens"]
    assert after["hearth:prefix_cache_hits_total"] == cached > 0
    assert after["hearth:prefix_cache_queries_total"] == 2 * usages[0]["prompt_tokens"]
    assert after["hearth:prefix_cache_hit_rate"] == pytest.approx(
        cached / after["hearth:prefix_cache_queries_total"]
    )
    assert 0 < after["hearth:prefix_cache_usage_perc"] <= 1


def test_cli_flag_sets_the_budget_and_zero_turns_it_off(capsys: pytest.CaptureFixture[str]) -> None:
    from hearth_server.cli import build_parser, settings_from_args
    from hearth_server.server import engine_config

    def budget(*flags: str) -> int:
        args = build_parser().parse_args(["serve", "some-model", *flags])
        return engine_config(settings_from_args(args), 4096).prefix_cache_tokens

    assert budget() == 8192
    assert budget("--prefix-cache-tokens", "100000") == 100000
    assert budget("--prefix-cache-tokens", "0") == 0
    with pytest.raises(SystemExit):
        budget("--prefix-cache-tokens", "-1")
    assert "--prefix-cache-tokens: must be >= 0" in capsys.readouterr().err
