"""HTTP behaviour on the tiny model: every bad input gets a 400/404 in its dialect's
envelope naming the field, and the server keeps serving afterwards."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from hearth_server.api.app import build_app
from hearth_server.config import ServerSettings

MODEL = "tiny"


@pytest.fixture
def client(make_engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    engine = make_engine(max_lora_rank=8)
    # Test adapters live under pytest's temporary directory: allow it as an adapter root.
    roots = [str(tmp_path_factory.getbasetemp())]
    settings = ServerSettings(model="/models/tiny", served_model_name=MODEL, adapter_roots=roots)
    app = build_app(settings, engine=engine)
    with TestClient(app) as c:
        yield c


def chat(**kw: object) -> dict[str, object]:
    body: dict[str, object] = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "The capital of France is"}],
        "max_tokens": 8,
        "temperature": 0,
    }
    body.update(kw)
    return body


def openai_error(resp, status: int, param: str | None = None) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    err: dict[str, Any] = resp.json()["error"]
    assert set(err) >= {"message", "type", "param", "code"}
    assert err["code"] == status
    if param is not None:
        assert err["param"] == param, err
    return err


def anthropic_error(resp, status: int, kind: str) -> str:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["type"] == "error" and body["error"]["type"] == kind
    return str(body["error"]["message"])


def sse(resp) -> list[dict[str, object] | str]:
    events: list[dict[str, object] | str] = []
    for line in resp.text.splitlines():
        if line.startswith("data: "):
            data = line[6:]
            events.append(data if data == "[DONE]" else json.loads(data))
    return events


def test_chat_completion_and_usage(client: TestClient) -> None:
    r = client.post("/v1/chat/completions", json=chat())
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["finish_reason"] in ("stop", "length")
    tok = client.post("/tokenize", json={"messages": chat()["messages"]}).json()
    assert body["usage"]["prompt_tokens"] == tok["count"]


def test_streaming_assembles_to_non_streamed(client: TestClient) -> None:
    full = client.post("/v1/chat/completions", json=chat(ignore_eos=True)).json()
    r = client.post(
        "/v1/chat/completions",
        json=chat(ignore_eos=True, stream=True, stream_options={"include_usage": True}),
    )
    events = sse(r)
    assert events[-1] == "[DONE]"
    usage_chunk = events[-2]
    assert isinstance(usage_chunk, dict) and usage_chunk["choices"] == []
    assert usage_chunk["usage"] == full["usage"]
    text = "".join(
        e["choices"][0]["delta"].get("content", "")  # type: ignore[index]
        for e in events[:-2]
        if isinstance(e, dict)
    )
    assert text == full["choices"][0]["message"]["content"]


def test_completions_echo_n_and_logprobs(client: TestClient) -> None:
    r = client.post(
        "/v1/completions",
        json={"model": MODEL, "prompt": "Hello", "max_tokens": 4, "echo": True, "temperature": 0},
    )
    assert r.json()["choices"][0]["text"].startswith("Hello")
    r = client.post(
        "/v1/completions",
        json={
            "model": MODEL,
            "prompt": ["Hello", "Robots"],
            "n": 2,
            "max_tokens": 3,
            "logprobs": 2,
            "temperature": 0.8,
            "seed": 1,
        },
    )
    body = r.json()
    assert [c["index"] for c in body["choices"]] == [0, 1, 2, 3]
    lp = body["choices"][0]["logprobs"]
    assert len(lp["tokens"]) == len(lp["token_logprobs"]) == len(lp["top_logprobs"])
    r = client.post(
        "/v1/completions",
        json={"model": MODEL, "prompt": [5, 6, 7], "max_tokens": 2, "stream": True},
    )
    assert sse(r)[-1] == "[DONE]"


def test_context_length_exceeded_behavior(client: TestClient) -> None:
    base = {
        "model": MODEL,
        "prompt": "Hello",
        "max_tokens": 1000,
        "temperature": 0,
        "ignore_eos": True,
    }
    r = client.post("/v1/completions", json=base)
    assert r.status_code == 200  # truncate (default) lowers max_tokens to fit
    assert r.json()["usage"]["total_tokens"] == 128
    r = client.post("/v1/completions", json={**base, "context_length_exceeded_behavior": "error"})
    openai_error(r, 400, "max_tokens")


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"temperature": 3}, "temperature"),
        ({"temperature": "hot"}, "temperature"),
        ({"top_p": 0}, "top_p"),
        ({"top_k": -5}, "top_k"),
        ({"min_p": 2}, "min_p"),
        ({"presence_penalty": 9}, "presence_penalty"),
        ({"frequency_penalty": -9}, "frequency_penalty"),
        ({"repetition_penalty": -1}, "repetition_penalty"),
        ({"n": 0}, "n"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": "many"}, "max_tokens"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages.0.role"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages.0.content"),
        ({"top_logprobs": 3}, "top_logprobs"),
        ({"stream_options": {"include_usage": True}}, "stream_options"),
        ({"logit_bias": {"99999": 1}}, "logit_bias"),
        ({"logit_bias": {"5": 101}}, "logit_bias.5"),
        ({"logit_bias": {"five": 1}}, "logit_bias"),
        ({"n": 129}, "n"),
        ({"mirostat_target": 5.0}, "mirostat_target"),
        ({"typical_p": 0}, "typical_p"),
        ({"tools": [{"type": "function", "function": {"name": "a b"}}]}, "tools.0.function.name"),
        ({"stop": [""]}, "stop"),
        ({"stop_token_ids": [-1]}, "stop_token_ids"),
        ({"context_length_exceeded_behavior": "explode"}, "context_length_exceeded_behavior"),
        ({"messages": [{"role": "user", "content": "word " * 200}]}, "messages"),
    ],
)
def test_bad_chat_inputs_are_400_naming_the_field(client: TestClient, body, param) -> None:
    r = client.post("/v1/chat/completions", json=chat(**body))
    openai_error(r, 400, param)
    assert client.post("/v1/chat/completions", json=chat()).status_code == 200


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"prompt": []}, "prompt"),
        ({"prompt": [1, 10_000]}, "prompt[0]"),
        ({"prompt": "x", "suffix": "y"}, "suffix"),
        ({"prompt": "x", "logprobs": 50}, "logprobs"),
        ({"prompt": "x", "echo_last": 0}, "echo_last"),
        ({"prompt": "x", "best_of": 3}, "best_of"),
        ({"prompt": "word " * 200}, "prompt"),
        ({}, "prompt"),
    ],
)
def test_bad_completion_inputs(client: TestClient, body, param) -> None:
    r = client.post("/v1/completions", json={"model": MODEL, **body})
    openai_error(r, 400, param)


def test_malformed_json_and_unknown_model(client: TestClient) -> None:
    r = client.post(
        "/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"}
    )
    err = openai_error(r, 400)
    assert "JSON" in str(err["message"])
    openai_error(client.post("/v1/chat/completions", json=chat(model="nope")), 404, "model")
    r = client.post(
        "/v1/messages",
        json={"model": "nope", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]},
    )
    anthropic_error(r, 404, "not_found_error")


def test_anthropic_messages_and_errors(client: TestClient) -> None:
    msg = {
        "model": MODEL,
        "max_tokens": 6,
        "system": "Be brief.",
        "messages": [{"role": "user", "content": "Hello"}],
        "temperature": 0,
    }
    r = client.post("/v1/messages", json=msg)
    body = r.json()
    assert body["type"] == "message" and body["role"] == "assistant"
    assert body["stop_reason"] in ("end_turn", "max_tokens")
    assert body["usage"]["output_tokens"] >= 1
    r = client.post("/v1/messages", json={**msg, "stream": True})
    kinds = [line[7:] for line in r.text.splitlines() if line.startswith("event: ")]
    assert kinds[:2] == ["message_start", "content_block_start"]
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(kinds[2:-3]) <= {"content_block_delta"}
    no_max = {k: v for k, v in msg.items() if k != "max_tokens"}
    assert "max_tokens" in anthropic_error(
        client.post("/v1/messages", json=no_max), 400, "invalid_request_error"
    )
    bad_role = {**msg, "messages": [{"role": "system", "content": "x"}]}
    assert "role" in anthropic_error(
        client.post("/v1/messages", json=bad_role), 400, "invalid_request_error"
    )
    hot = {**msg, "temperature": 1.5}
    assert "temperature" in anthropic_error(
        client.post("/v1/messages", json=hot), 400, "invalid_request_error"
    )
    r = client.post("/v1/messages", content=b"[", headers={"content-type": "application/json"})
    anthropic_error(r, 400, "invalid_request_error")


def test_lora_lifecycle(client: TestClient, tiny_adapters: dict[str, Path], tmp_path: Path) -> None:
    path = str(tiny_adapters["alpha"])
    base = client.post("/v1/chat/completions", json=chat(ignore_eos=True)).json()
    r = client.post("/v1/load_lora_adapter", json={"lora_name": "a1", "lora_path": path})
    assert r.status_code == 200, r.text
    again = client.post("/v1/load_lora_adapter", json={"lora_name": "a1", "lora_path": path})
    assert again.status_code == 200 and again.json()["status"] == "already_loaded"
    clash = client.post(
        "/v1/load_lora_adapter", json={"lora_name": "a1", "lora_path": str(tiny_adapters["beta"])}
    )
    openai_error(clash, 400, "lora_name")
    cards = {c["id"]: c for c in client.get("/v1/models").json()["data"]}
    assert cards["a1"]["parent"] == MODEL and cards[MODEL]["parent"] is None
    tuned = client.post("/v1/chat/completions", json=chat(model="a1", ignore_eos=True)).json()
    assert tuned["choices"][0]["message"] != base["choices"][0]["message"]
    metrics = client.get("/metrics").text
    assert 'hearth:lora_adapter_info{lora_name="a1",model_name="tiny"} 1.0' in metrics
    assert client.post("/v1/unload_lora_adapter", json={"lora_name": "a1"}).status_code == 200
    gone = client.post("/v1/unload_lora_adapter", json={"lora_name": "a1"})
    assert gone.status_code == 200 and gone.json()["status"] == "not_loaded"
    openai_error(client.post("/v1/chat/completions", json=chat(model="a1")), 404, "model")


def test_bad_adapters_are_400(
    client: TestClient, tiny_adapters: dict[str, Path], tmp_path: Path
) -> None:
    def load(path: Path | str, name: str = "bad") -> Any:
        return client.post(
            "/v1/load_lora_adapter", json={"lora_name": name, "lora_path": str(path)}
        )

    openai_error(load(tmp_path / "missing"), 400, "lora_path")
    broken = tmp_path / "broken"
    shutil.copytree(tiny_adapters["alpha"], broken)
    (broken / "adapter_config.json").write_text("{oops")
    openai_error(load(broken), 400, "lora_path")
    truncated = tmp_path / "truncated"
    shutil.copytree(tiny_adapters["alpha"], truncated)
    (truncated / "adapter_model.safetensors").write_bytes(b"\x00" * 10)
    openai_error(load(truncated), 400, "lora_path")
    big = tmp_path / "big"
    shutil.copytree(tiny_adapters["alpha"], big)
    cfg = json.loads((big / "adapter_config.json").read_text())
    cfg["r"] = 64
    (big / "adapter_config.json").write_text(json.dumps(cfg))
    err = openai_error(load(big), 400, "lora_path")
    assert "max-lora-rank" in str(err["message"])
    openai_error(load("hf://org/repo", name="hub"), 400, "lora_path")
    openai_error(client.post("/v1/load_lora_adapter", json={"lora_name": "x"}), 400, "lora_path")
    openai_error(load(tiny_adapters["alpha"], name=MODEL), 400, "lora_name")
    assert [c["id"] for c in client.get("/v1/models").json()["data"]] == [MODEL]


def test_tokenize_detokenize(client: TestClient) -> None:
    ids = client.post("/tokenize", json={"prompt": "Hello world"}).json()
    assert ids["count"] == len(ids["tokens"]) and ids["max_model_len"] == 128
    text = client.post("/detokenize", json={"tokens": ids["tokens"]}).json()["prompt"]
    assert text == "Hello world"
    openai_error(client.post("/detokenize", json={"tokens": [10_000]}), 400, "tokens")
    openai_error(client.post("/tokenize", json={}), 400)


def test_health_and_metrics(client: TestClient) -> None:
    assert client.get("/health").status_code == 200
    client.post("/v1/chat/completions", json=chat())
    text = client.get("/metrics").text
    for name in (
        "hearth:num_requests_running",
        "hearth:num_requests_waiting",
        "hearth:kv_cache_usage_perc",
        "hearth:time_to_first_token_seconds_bucket",
        "hearth:time_per_output_token_seconds_bucket",
        "hearth:prompt_tokens_total",
        "hearth:generation_tokens_total",
        "hearth:lora_adapters_loaded",
    ):
        assert name in text, name


def test_health_is_503_until_loaded_and_requests_get_503() -> None:
    app = build_app(ServerSettings(model="/nonexistent/model"))
    with TestClient(app) as c:
        # The background load fails at once; health explains why.
        for _ in range(100):
            r = c.get("/health")
            if "startup failed" in r.text:
                break
            time.sleep(0.05)
        assert r.status_code == 503
        assert "startup failed" in r.text
        openai_error(c.post("/v1/chat/completions", json=chat()), 503)


def test_more_sequences_than_the_queue_holds_is_400_naming_the_limit(make_engine) -> None:
    """Such a request could never be admitted: it is invalid (400), not an overload (503)
    that a client would retry. (Real overload: test_http_server.py.)"""
    engine = make_engine(max_num_seqs=1, max_waiting=4)
    app = build_app(ServerSettings(model="/models/tiny", served_model_name=MODEL), engine=engine)
    short = {"model": MODEL, "max_tokens": 2}
    with TestClient(app) as c:
        err = openai_error(c.post("/v1/completions", json={**short, "prompt": ["Hi"] * 5}), 400)
        assert "--max-waiting" in err["message"] and "4" in err["message"]
        assert err["param"] == "prompt"
        two_by_two = {**short, "prompt": ["Hi", "Yo"], "n": 2}
        assert c.post("/v1/completions", json=two_by_two).status_code == 200
        err = openai_error(c.post("/v1/completions", json={**two_by_two, "n": 3}), 400, "prompt")
        openai_error(c.post("/v1/chat/completions", json=chat(n=5)), 400, "n")


def test_chat_n_choices_stream(client: TestClient) -> None:
    r = client.post(
        "/v1/chat/completions", json=chat(n=2, stream=True, temperature=1.0, seed=3, max_tokens=5)
    )
    events: list[Any] = [e for e in sse(r) if isinstance(e, dict)]
    finished = {
        e["choices"][0]["index"]
        for e in events
        if e["choices"] and e["choices"][0]["finish_reason"]
    }
    assert finished == {0, 1}


def test_reloading_a_name_with_other_weights_uses_the_new_weights(
    client: TestClient, tiny_adapters: dict[str, Path]
) -> None:
    def load(name: str, which: str) -> None:
        body = {"lora_name": name, "lora_path": str(tiny_adapters[which])}
        assert client.post("/v1/load_lora_adapter", json=body).status_code == 200

    def answer(model: str) -> str:
        r = client.post("/v1/chat/completions", json=chat(model=model, ignore_eos=True))
        return str(r.json()["choices"][0]["message"]["content"])

    load("x", "alpha")
    load("ref-beta", "beta")
    first = answer("x")
    client.post("/v1/unload_lora_adapter", json={"lora_name": "x"})
    load("x", "beta")
    assert answer("x") == answer("ref-beta") != first


def test_engine_crash_turns_health_503_and_fails_requests(make_engine) -> None:
    engine = make_engine()

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("simulated kernel failure")

    engine.runner.step = boom
    app = build_app(ServerSettings(model="/models/tiny", served_model_name=MODEL), engine=engine)
    with TestClient(app) as c:
        openai_error(c.post("/v1/chat/completions", json=chat()), 500)
        assert c.get("/health").status_code == 503
        openai_error(c.post("/v1/chat/completions", json=chat()), 503)
        assert 'hearth:engine_alive{model_name="tiny"} 0.0' in c.get("/metrics").text


def test_concurrent_load_unload_and_requests_are_safe(
    client: TestClient, tiny_adapters: dict[str, Path]
) -> None:
    import concurrent.futures

    path = str(tiny_adapters["alpha"])
    body = {"lora_name": "c1", "lora_path": path}
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        loads = list(pool.map(lambda _: client.post("/v1/load_lora_adapter", json=body), range(6)))
    statuses = sorted(r.json()["status"] for r in loads)
    assert [r.status_code for r in loads] == [200] * 6
    assert statuses == ["already_loaded"] * 5 + ["loaded"]

    # Requests keep flowing while the adapter is unloaded and re-loaded under them:
    # each one either finishes normally or gets a clean 404, never a 500 or a hang.
    long = chat(model="c1", ignore_eos=True, max_tokens=40)

    def request(_: int) -> int:
        return client.post("/v1/chat/completions", json=long).status_code

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        pending = [pool.submit(request, i) for i in range(6)]
        for _ in range(3):
            client.post("/v1/unload_lora_adapter", json={"lora_name": "c1"})
            client.post("/v1/load_lora_adapter", json=body)
        codes = [f.result(timeout=60) for f in pending]
    assert set(codes) <= {200, 404}
    assert client.post("/v1/chat/completions", json=chat(model="c1")).status_code == 200
