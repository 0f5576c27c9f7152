"""Issue 8 through the real HTTP server (uvicorn on a socket, tiny llama engine).

One regression test per reproduction of the issue (each used to kill the engine), plus
the server-side defences: strict types, content parts, body limit, tokenising off the
event loop, overload. Every test ends by checking that the server still serves.
"""

from __future__ import annotations

import concurrent.futures
import json
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.server.http_support import (
    MODEL,
    LiveServer,
    anthropic_error,
    live_server,
    openai_error,
    sse_data,
    tiny_engine,
)

LIMIT = 256 * 1024  # --max-request-bytes of the shared server
SURROGATE = "\ud800"


@pytest.fixture(scope="module")
def server(tiny_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    # max_model_len 640 > the runner's first cache allocation (256): the cache grows.
    engine = tiny_engine(tiny_dir, max_model_len=640, max_lora_rank=8)
    roots = [str(tmp_path_factory.getbasetemp())]
    try:
        with live_server(engine, adapter_roots=roots, max_request_bytes=LIMIT) as s:
            yield s
    finally:
        engine.shutdown()


def chat(**kw: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "The capital of France is"}],
        "max_tokens": 4,
        "temperature": 0,
    }
    body.update(kw)
    return body


def message(**kw: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": MODEL,
        "max_tokens": 4,
        "messages": [{"role": "user", "content": "Hello"}],
        "temperature": 0,
    }
    body.update(kw)
    return body


def assert_serving(server: LiveServer) -> None:
    assert server.get("/health").status_code == 200
    assert server.state.engine is not None and server.state.engine.alive
    r = server.post("/v1/chat/completions", chat())
    assert r.status_code == 200, r.text


# -- reproduction 1: ordinary traffic (cache grown in a step, out-of-order finish) ------------


def test_out_of_order_finish_after_the_cache_grew(server: LiveServer) -> None:
    long = {"model": MODEL, "prompt": "Count:", "max_tokens": 300, "ignore_eos": True}
    short = {"model": MODEL, "prompt": "Hello", "max_tokens": 5, "ignore_eos": True}
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        first = pool.submit(server.post, "/v1/completions", {**long, "temperature": 0})
        second = pool.submit(server.post, "/v1/completions", short)
        third = pool.submit(server.post, "/v1/completions", {**short, "max_tokens": 60})
        responses = [f.result(timeout=120) for f in (first, second, third)]
    assert [r.status_code for r in responses] == [200, 200, 200], [r.text for r in responses]
    assert responses[0].json()["usage"]["completion_tokens"] == 300
    # A client that hangs up mid-stream (an abort) after the cache grew.
    with httpx.stream(
        "POST", f"{server.url}/v1/completions", json={**long, "stream": True}, timeout=60
    ) as r:
        for line in r.iter_lines():
            if line.startswith("data: "):
                break
    assert_serving(server)


# -- reproduction 2: seeds beyond 64 bits --------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "extra"),
    [
        ("/v1/chat/completions", {"seed": 2**64}),
        ("/v1/chat/completions", {"seed": -(2**63) - 1}),
        ("/v1/chat/completions", {"seed": 2**63 - 1, "n": 2, "temperature": 1}),
        ("/v1/completions", {"seed": 18446744073709551616}),
        ("/v1/completions", {"seed": 2**63 - 2, "n": 3, "temperature": 1}),
    ],
)
def test_seed_outside_64_bits_is_400(server: LiveServer, path: str, extra: dict) -> None:
    body = chat(**extra) if "chat" in path else {"model": MODEL, "prompt": "Hi", **extra}
    message = openai_error(server.post(path, body), 400, "seed")
    assert "seed" in message
    assert_serving(server)


def test_seeds_at_the_edges_of_64_bits_are_served(server: LiveServer) -> None:
    for seed, n in ((2**63 - 1, 1), (2**63 - 2, 2), (-(2**63), 3)):
        r = server.post("/v1/chat/completions", chat(seed=seed, n=n, temperature=1))
        assert r.status_code == 200, r.text
        assert len(r.json()["choices"]) == n


# -- reproduction 3: tiny temperatures ---------------------------------------------------------


def test_tiny_temperature_is_sampled_at_the_documented_minimum(server: LiveServer) -> None:
    """Positive temperatures below 0.01 sample at 0.01 (docs/model-server.md): a result,
    never a NaN in the sampler."""
    for t in (1e-45, 5e-324, 1e-8):
        r = server.post("/v1/chat/completions", chat(temperature=t, seed=1, max_tokens=6))
        assert r.status_code == 200, r.text
        r = server.post("/v1/messages", message(temperature=t))
        assert r.status_code == 200, r.text
        assert r.json()["type"] == "message"
    assert_serving(server)


# -- reproduction 4: out-of-vocabulary stop tokens ---------------------------------------------


@pytest.mark.parametrize("ids", [[1_000_000_000], [5, 2**40], [-1]])
def test_out_of_vocabulary_stop_token_ids_are_400(server: LiveServer, ids: list[int]) -> None:
    body = chat(stop_token_ids=ids, min_tokens=3)
    openai_error(server.post("/v1/chat/completions", body), 400, "stop_token_ids")
    body = {"model": MODEL, "prompt": "Hi", "stop_token_ids": ids, "min_tokens": 3}
    openai_error(server.post("/v1/completions", body), 400, "stop_token_ids")
    assert_serving(server)


# -- reproduction 5: an adapter with NaN weights -----------------------------------------------


def _nan_adapter(source: Path, out: Path) -> Path:
    import torch
    from safetensors.torch import load_file, save_file

    shutil.copytree(source, out)
    weights = out / "adapter_model.safetensors"
    tensors = load_file(str(weights))
    poisoned = {
        k: torch.full_like(v, float("nan")) if "lora_B" in k else v for k, v in tensors.items()
    }
    save_file(poisoned, str(weights))
    return out


def test_adapter_with_nan_weights_is_refused_at_load(
    server: LiveServer, tiny_adapters: dict[str, Path], tmp_path: Path
) -> None:
    path = _nan_adapter(tiny_adapters["alpha"], tmp_path / "nan")
    body = {"lora_name": "poisoned", "lora_path": str(path)}
    message = openai_error(server.post("/v1/load_lora_adapter", body), 400, "lora_path")
    assert "finite" in message or "nan" in message.lower()
    openai_error(server.post("/v1/chat/completions", chat(model="poisoned")), 404, "model")
    assert_serving(server)


# -- reproduction 6: lone surrogates -----------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/v1/chat/completions", chat(messages=[{"role": "user", "content": SURROGATE}]), None),
        (
            "/v1/chat/completions",
            chat(messages=[{"role": "user", "content": [{"type": "text", "text": SURROGATE}]}]),
            None,
        ),
        ("/v1/chat/completions", chat(model=f"tiny{SURROGATE}"), "model"),
        ("/v1/chat/completions", chat(stop=["ok", SURROGATE]), "stop"),
        ("/v1/completions", {"model": MODEL, "prompt": f"a{SURROGATE}b"}, "prompt"),
        ("/v1/completions", {"model": MODEL, "prompt": ["fine", SURROGATE]}, "prompt"),
        ("/v1/completions", {"model": SURROGATE, "prompt": "hi"}, "model"),
        ("/tokenize", {"prompt": SURROGATE}, "prompt"),
        ("/tokenize", {"messages": [{"role": "user", "content": SURROGATE}]}, None),
        ("/v1/load_lora_adapter", {"lora_name": SURROGATE, "lora_path": "/x"}, "lora_name"),
    ],
)
def test_lone_surrogates_are_400_openai(
    server: LiveServer, path: str, body: dict, param: str | None
) -> None:
    message = openai_error(server.post(path, body), 400, param)
    assert "surrogate" in message
    assert_serving(server)


@pytest.mark.parametrize(
    "body",
    [
        message(messages=[{"role": "user", "content": SURROGATE}]),
        message(messages=[{"role": "user", "content": [{"type": "text", "text": SURROGATE}]}]),
        message(system=f"be nice{SURROGATE}"),
        message(model=SURROGATE),
        message(stop_sequences=[SURROGATE]),
    ],
)
def test_lone_surrogates_are_400_anthropic(server: LiveServer, body: dict) -> None:
    text = anthropic_error(server.post("/v1/messages", body), 400, "invalid_request_error")
    assert "surrogate" in text
    assert_serving(server)


# -- strict types (as OpenAI's API) ------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"max_tokens": True}, "max_tokens"),
        ({"n": "2"}, "n"),
        ({"stream": "yes"}, "stream"),
        ({"temperature": "0.5"}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
        ({"top_p": float("inf")}, "top_p"),
        ({"seed": 1.5}, "seed"),
        ({"logprobs": 1}, "logprobs"),
        ({"stop": 5}, "stop"),
    ],
)
def test_no_type_coercion(server: LiveServer, extra: dict, param: str) -> None:
    openai_error(server.post("/v1/chat/completions", chat(**extra)), 400, param)


def test_integers_are_numbers(server: LiveServer) -> None:
    r = server.post("/v1/chat/completions", chat(temperature=1, top_p=1, presence_penalty=0))
    assert r.status_code == 200, r.text
    r = server.post("/v1/messages", message(temperature=1, top_p=1))
    assert r.status_code == 200, r.text
    text = anthropic_error(server.post("/v1/messages", message(max_tokens="5")), 400)
    assert "max_tokens" in text


# -- content parts the model cannot take -------------------------------------------------------


@pytest.mark.parametrize(
    ("part", "expected"),
    [
        ({"type": "image_url", "image_url": {"url": "https://x/y.png"}}, "image input is not"),
        ({"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}, "audio input"),
        ({"type": "file", "file": {"file_id": "f"}}, "file input"),
        ({"type": "hologram"}, "unsupported type"),
        ({"type": "text"}, "needs a string 'text'"),
        ("just a string", "must be an object"),
    ],
)
def test_non_text_chat_parts_are_400_saying_so(
    server: LiveServer, part: Any, expected: str
) -> None:
    content = [{"type": "text", "text": "Describe this:"}, part]
    body = chat(messages=[{"role": "user", "content": content}])
    message = openai_error(server.post("/v1/chat/completions", body), 400, "messages.0.content")
    assert expected in message and "more problems" not in message


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        ({"type": "image", "source": {"type": "base64", "data": ""}}, "image input is not"),
        ({"type": "document", "source": {"type": "text", "data": "x"}}, "document input"),
        ({"type": "tool_use", "id": "t", "name": "f", "input": {}}, "assistant messages"),
        ({"type": "thinking", "thinking": "hm"}, "unsupported type"),
    ],
)
def test_non_text_anthropic_blocks_are_400_saying_so(
    server: LiveServer, block: dict, expected: str
) -> None:
    body = message(messages=[{"role": "user", "content": [block]}])
    text = anthropic_error(server.post("/v1/messages", body), 400, "invalid_request_error")
    assert expected in text and "more problems" not in text
    assert "messages.0.content" in text


# -- request body limit ------------------------------------------------------------------------


def test_bodies_over_the_limit_get_413_in_each_dialect(server: LiveServer) -> None:
    big = "word " * (LIMIT // 4)
    r = server.post("/v1/chat/completions", chat(messages=[{"role": "user", "content": big}]))
    assert "--max-request-bytes" in openai_error(r, 413)
    r = server.post("/v1/messages", message(messages=[{"role": "user", "content": big}]))
    anthropic_error(r, 413, "request_too_large")

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while reading
        yield b'{"model": "tiny", "prompt": "'
        for _ in range(LIMIT // 1024 + 1):
            yield b"x" * 1024
        yield b'"}'

    r = httpx.post(f"{server.url}/v1/completions", content=chunks(), timeout=60)
    openai_error(r, 413)
    assert_serving(server)


# -- tokenising off the event loop -------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/tokenize", {"prompt": "Hello world"}),
        ("/v1/completions", {"model": MODEL, "prompt": "Hello", "max_tokens": 1}),
        ("/v1/chat/completions", chat(max_tokens=1)),
    ],
)
def test_tokenising_runs_off_the_event_loop(server: LiveServer, path: str, body: dict) -> None:
    """While the tokenizer thread is busy (here: held by the test, standing in for a
    multi-megabyte prompt), the request waits for it, and /health and /metrics answer."""
    release = threading.Event()
    busy = server.state.tokenizer_pool.submit(release.wait, 60)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pending = pool.submit(server.post, path, body)
        try:
            for _ in range(5):
                assert server.get("/health").status_code == 200
                assert server.get("/metrics").status_code == 200
            assert not pending.done(), "the request did not wait for the tokenizer thread"
        finally:
            release.set()
        assert pending.result(timeout=60).status_code == 200
    busy.result(timeout=10)


# -- overload is a 503 that names it; the server recovers --------------------------------------


def _wait_for(condition: Any, what: str) -> None:
    for _ in range(1000):
        if condition():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting until {what}")


def test_overload_is_503_and_the_server_recovers(tiny_dir: Path) -> None:
    engine = tiny_engine(tiny_dir, max_num_seqs=1, max_waiting=1)
    gate = threading.Event()  # holds the engine inside its first step
    step = engine.runner.step

    def gated_step(*args: Any, **kwargs: Any) -> Any:
        gate.wait(60)
        return step(*args, **kwargs)

    engine.runner.step = gated_step  # type: ignore[method-assign]
    body = {"model": MODEL, "prompt": "Hello", "max_tokens": 3}
    try:
        with live_server(engine) as server, concurrent.futures.ThreadPoolExecutor(2) as pool:
            running = pool.submit(server.post, "/v1/completions", body)
            _wait_for(lambda: len(engine.running) == 1, "the first request runs")
            waiting = pool.submit(server.post, "/v1/completions", body)
            _wait_for(lambda: engine.num_waiting == 1, "the second request is queued")
            message = openai_error(server.post("/v1/completions", body), 503)
            assert "overloaded" in message
            gate.set()
            assert running.result(timeout=60).status_code == 200
            assert waiting.result(timeout=60).status_code == 200
            assert_serving(server)
    finally:
        gate.set()
        engine.shutdown()


def test_malformed_bodies_are_400(server: LiveServer) -> None:
    for raw in (b"", b"{", b"[1, 2]", b"null", b'"text"', b"\xff\xfe"):
        r = httpx.post(
            f"{server.url}/v1/chat/completions",
            content=raw,
            headers={"content-type": "application/json"},
        )
        openai_error(r, 400)
        r = httpx.post(
            f"{server.url}/v1/messages", content=raw, headers={"content-type": "application/json"}
        )
        anthropic_error(r, 400, "invalid_request_error")
    assert_serving(server)


def test_stream_events_are_well_formed(server: LiveServer) -> None:
    r = server.post("/v1/chat/completions", chat(stream=True, n=2, temperature=1, seed=3))
    events = sse_data(r.text)
    assert events[-1] == "[DONE]"
    assert all(isinstance(e, dict) and "error" not in e for e in events[:-1])
    assert json.loads(json.dumps(events[:-1]))
