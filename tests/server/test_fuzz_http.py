"""Property: whatever a client sends, the server answers 2xx or a 4xx in the dialect's
error envelope, and its engine is alive afterwards.

Requests are generated across the whole request schema of every endpoint, mixing valid
values with hostile ones (wrong types, NaN and infinity, huge integers, lone surrogates,
unknown content parts, junk bodies), and sent through the real HTTP server to the real
engine on the tiny llama.

Example budget: ``HYPOTHESIS_PROFILE=ci`` (the default, small enough for every test run)
or ``HYPOTHESIS_PROFILE=deep`` (on demand, ~50x more examples)::

    HYPOTHESIS_PROFILE=deep pytest tests/server/test_fuzz_http.py
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

hypothesis = pytest.importorskip("hypothesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tests.server.http_support import (  # noqa: E402
    MODEL,
    LiveServer,
    live_server,
    tiny_engine,
)

_COMMON = {
    "deadline": None,  # the engine's speed is not under test
    "database": None,  # no .hypothesis/ directory in the repository
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}
settings.register_profile("ci", max_examples=40, **_COMMON)  # type: ignore[arg-type]
settings.register_profile("deep", max_examples=2000, **_COMMON)  # type: ignore[arg-type]
PROFILE = settings.get_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

SURROGATES = ["\ud800", "\udfff", "a\udc80b"]

# -- value strategies ----------------------------------------------------------------------

pieces = st.sampled_from(["a", " ", "é", "日", "\n", "<|im_end|>", "Hello", *SURROGATES])
texts = st.text(max_size=24) | st.lists(pieces, max_size=6).map("".join)
big_ints = st.integers(min_value=-(2**70), max_value=2**70)
hostile_scalars = st.one_of(
    st.none(),
    st.booleans(),
    big_ints,
    st.floats(allow_nan=True, allow_infinity=True),
    texts,
    st.sampled_from(["2", "yes", "true", "1e3", ""]),
)
hostile = st.recursive(
    hostile_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=6,
)


def often(value: Any, *others: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``value`` half of the time, else one of ``others``."""
    return st.one_of(st.just(value), st.one_of(*others)) if others else st.just(value)


model_names = often(MODEL, st.sampled_from(["/models/tiny", "no-such-model", *SURROGATES]))
in_vocab = st.integers(min_value=0, max_value=399)
token_ids = st.one_of(
    in_vocab, in_vocab, in_vocab, st.integers(min_value=-3, max_value=450), big_ints
)
edge_temperatures = st.sampled_from([0, 1, 2, 1e-45, 5e-324, 1e-8, 0.009, 2.0000001, -0.0])
unit = st.floats(min_value=0, max_value=1)

# Each field's plausible values: mostly valid, with the edges of its range (and a little
# beyond). Wholly hostile values come in by mutation, below.
SAMPLING: dict[str, st.SearchStrategy[Any]] = {
    "model": model_names,
    "temperature": st.floats(min_value=0, max_value=2) | edge_temperatures,
    "top_p": unit | st.sampled_from([0, 1e-45, 1.01]),
    "top_k": st.integers(min_value=-1, max_value=450) | st.sampled_from([-2, 10**9]),
    "min_p": unit,
    "repetition_penalty": st.floats(min_value=0.5, max_value=2) | st.sampled_from([0, 2.5]),
    "presence_penalty": st.floats(min_value=-2, max_value=2),
    "frequency_penalty": st.floats(min_value=-2, max_value=2),
    "seed": st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.sampled_from([2**63, 2**64, -(2**63) - 1, 2**63 - 1]),
    "n": st.integers(min_value=1, max_value=3),
    "logit_bias": st.dictionaries(
        token_ids.map(str),
        st.floats(min_value=-100, max_value=100) | st.sampled_from([-101, 1e9]),
        max_size=3,
    ),
    "typical_p": unit | st.sampled_from([1e-9, 1.5]),
    "stop": texts | st.lists(texts, max_size=3),
    "stop_token_ids": st.lists(token_ids, max_size=3),
    "ignore_eos": st.booleans(),
    "min_tokens": st.integers(min_value=0, max_value=30),
    "skip_special_tokens": st.booleans(),
    "stream": st.booleans(),
    "user": texts,
    "context_length_exceeded_behavior": st.sampled_from(["truncate", "error"]),
}
# Fields with structure of their own (tools, constraints, stream options, the refused
# `suffix`): only ever mutated in, with hostile values, never generated well-formed here
# (tests/server/test_tools.py and test_structured.py send the valid ones).
REFUSED = ["tools", "response_format", "suffix", "stream_options", "tool_choice"]
max_tokens = st.integers(min_value=1, max_value=24) | st.sampled_from([10**4, 2**63])

text_part = st.fixed_dictionaries({"type": st.just("text"), "text": texts})
other_part = st.fixed_dictionaries(
    {
        "type": st.sampled_from(
            ["image_url", "input_audio", "file", "image", "document", "tool_use", "x"]
        )
    },
    optional={"image_url": st.just({"url": "https://example.com/a.png"}), "text": texts},
)
chat_content = st.one_of(texts, texts, st.lists(text_part, max_size=3), st.none())
chat_message = st.fixed_dictionaries(
    {
        "role": often("user", st.sampled_from(["assistant", "system", "developer"])),
        "content": chat_content,
    },
    optional={"name": texts},
)
anthropic_message = st.fixed_dictionaries(
    {
        "role": often("user", st.just("assistant")),
        "content": texts | st.lists(text_part, min_size=1, max_size=3),
    }
)


def bodies(
    required: dict[str, st.SearchStrategy[Any]],
    optional: dict[str, st.SearchStrategy[Any]],
    mutable: list[str] | None = None,
) -> st.SearchStrategy[Any]:
    """Plausible bodies; the same with one field replaced by something hostile, a foreign
    content part or an unknown field; and now and then no object at all."""
    plausible = st.fixed_dictionaries(required, optional=optional)
    keys = [*required, *optional, *(mutable or []), "unknown_field"]
    replaced = st.builds(
        lambda body, key, value: {**body, key: value}, plausible, st.sampled_from(keys), hostile
    )
    return st.one_of(plausible, plausible, plausible, replaced, hostile)


def with_foreign_part(body: dict[str, Any], part: dict[str, Any], index: int) -> dict[str, Any]:
    """``body`` with a non-text content part in one of its messages."""
    messages = body.get("messages") if isinstance(body, dict) else None
    if not isinstance(messages, list) or not messages or not isinstance(messages[0], dict):
        return body
    message = dict(messages[index % len(messages)])
    content = message.get("content")
    message["content"] = [*(content if isinstance(content, list) else []), part]
    return {**body, "messages": [message, *messages[1:]]}


chat_bodies = bodies(
    {"messages": st.lists(chat_message, min_size=1, max_size=3)},
    {
        **SAMPLING,
        "max_tokens": max_tokens,
        "max_completion_tokens": max_tokens,
        "logprobs": st.booleans(),
        "top_logprobs": st.integers(min_value=0, max_value=20),
    },
    REFUSED,
)
chat_bodies = chat_bodies | st.builds(
    with_foreign_part, chat_bodies, other_part | hostile, st.integers(0, 2)
)
completion_bodies = bodies(
    {
        "prompt": texts
        | st.lists(texts, min_size=1, max_size=3)
        | st.lists(token_ids, min_size=1, max_size=8)
        | st.lists(st.lists(token_ids, min_size=1, max_size=5), min_size=1, max_size=3)
    },
    {
        **SAMPLING,
        "max_tokens": max_tokens,
        "echo": st.booleans(),
        "logprobs": st.integers(min_value=0, max_value=20),
    },
    REFUSED,
)
message_bodies = bodies(
    {
        "model": model_names,
        "max_tokens": max_tokens,
        "messages": st.lists(anthropic_message, min_size=1, max_size=3),
    },
    {
        "system": texts | st.lists(text_part, max_size=2),
        "stop_sequences": st.lists(texts, max_size=3),
        "stream": st.booleans(),
        "temperature": unit | edge_temperatures,
        "top_p": unit,
        "top_k": st.integers(min_value=0, max_value=500),
        "metadata": st.dictionaries(texts, texts, max_size=2),
    },
    ["tools"],
)
message_bodies = message_bodies | st.builds(
    with_foreign_part, message_bodies, other_part | hostile, st.integers(0, 2)
)
tokenize_bodies = (
    bodies(
        {},
        {
            "model": model_names,
            "add_special_tokens": st.booleans(),
            "add_generation_prompt": st.booleans(),
        },
        ["prompt", "messages"],
    ).map(lambda b: b)
    | st.fixed_dictionaries({"prompt": texts}, optional={"model": model_names})
    | st.fixed_dictionaries(
        {"messages": st.lists(chat_message, max_size=2)}, optional={"model": model_names}
    )
)
detokenize_bodies = bodies({"tokens": st.lists(token_ids, max_size=8)}, {"model": model_names})
adapter_bodies = bodies(
    {
        "lora_name": texts | st.just("tiny"),
        "lora_path": texts | st.sampled_from(["/", "/etc", "pvc://x/../..", "hf://a/b"]),
    },
    {},
)

embedding_bodies = bodies(
    {
        "input": texts
        | st.lists(texts, max_size=3)
        | st.lists(token_ids, max_size=8)
        | st.lists(st.lists(token_ids, max_size=5), max_size=3)
    },
    {
        "model": model_names,
        "dimensions": st.integers(min_value=-1, max_value=70),
        "encoding_format": often("float", st.sampled_from(["base64", "int8"])),
        "user": texts,
    },
)

ENDPOINTS: dict[str, st.SearchStrategy[Any]] = {
    "/v1/chat/completions": chat_bodies,
    "/v1/completions": completion_bodies,
    "/v1/messages": message_bodies,
    "/v1/embeddings": embedding_bodies,
    "/tokenize": tokenize_bodies,
    "/detokenize": detokenize_bodies,
    "/v1/load_lora_adapter": adapter_bodies,
    "/v1/unload_lora_adapter": adapter_bodies,
}

# -- the invariant -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tiny_dir: Path) -> Iterator[LiveServer]:
    engine = tiny_engine(tiny_dir, max_num_seqs=8, max_waiting=64)
    try:
        with live_server(engine, max_request_bytes=64 * 1024) as s:
            yield s
    finally:
        engine.shutdown()


def _check_error(path: str, r: httpx.Response) -> None:
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    body = r.json()
    if path == "/v1/messages":
        assert body["type"] == "error", body
        assert isinstance(body["error"]["type"], str), body
        assert isinstance(body["error"]["message"], str) and body["error"]["message"], body
    else:
        err = body["error"]
        assert err["code"] == r.status_code, body
        assert isinstance(err["type"], str) and isinstance(err["message"], str), body
        assert err["param"] is None or isinstance(err["param"], str), body


def _check_stream(path: str, text: str) -> None:
    for line in text.splitlines():
        if line.startswith("event: "):
            assert line != "event: error", text
        if line.startswith("data: ") and line != "data: [DONE]":
            event = json.loads(line[6:])
            assert "error" not in event or (path == "/v1/messages" and event["type"] != "error"), (
                text
            )
    if path != "/v1/messages":
        assert text.rstrip().endswith("data: [DONE]"), text


def check_exchange(server: LiveServer, path: str, body: Any) -> None:
    r = server.post(path, body)
    if r.status_code >= 400:
        _check_error(path, r)
    else:
        assert r.status_code == 200, r.text
        if r.headers["content-type"].startswith("text/event-stream"):
            _check_stream(path, r.text)
        else:
            assert isinstance(r.json(), dict)
    assert server.get("/health").status_code == 200, "the engine died"


@pytest.mark.parametrize("path", list(ENDPOINTS))
def test_any_request_gets_2xx_or_a_4xx_in_its_dialect(server: LiveServer, path: str) -> None:
    @settings(PROFILE)
    @given(body=ENDPOINTS[path])
    def exchange(body: Any) -> None:
        check_exchange(server, path, body)

    exchange()
    assert server.state.engine is not None and server.state.engine.alive


@settings(PROFILE)
@given(
    path=st.sampled_from(list(ENDPOINTS)),
    raw=st.binary(max_size=64) | st.text(max_size=64).map(str.encode),
)
def test_junk_bodies_get_a_4xx_in_their_dialect(server: LiveServer, path: str, raw: bytes) -> None:
    r = httpx.post(f"{server.url}{path}", content=raw, headers={"content-type": "application/json"})
    if r.status_code == 200:  # a junk body that happens to be a valid request
        return
    _check_error(path, r)
