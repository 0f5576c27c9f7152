"""--api-key through the real HTTP server, with raw requests and the official SDKs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.server.http_support import (
    MODEL,
    LiveServer,
    anthropic_error,
    live_server,
    openai_error,
    tiny_engine,
)

KEY = "s3cret-token-for-tests"
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}
MESSAGE = {**CHAT, "temperature": 0}


@pytest.fixture(scope="module")
def server(tiny_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    engine = tiny_engine(tiny_dir, max_lora_rank=8)
    roots = [str(tmp_path_factory.getbasetemp())]
    try:
        with live_server(engine, api_key=KEY, adapter_roots=roots) as s:
            yield s
    finally:
        engine.shutdown()


ROUTES = [
    ("POST", "/v1/chat/completions", CHAT),
    ("POST", "/v1/completions", {"model": MODEL, "prompt": "Hi", "max_tokens": 2}),
    ("GET", "/v1/models", None),
    ("POST", "/tokenize", {"prompt": "Hi"}),
    ("POST", "/detokenize", {"tokens": [5]}),
    ("POST", "/v1/load_lora_adapter", {"lora_name": "a", "lora_path": "/nowhere"}),
    ("POST", "/v1/unload_lora_adapter", {"lora_name": "a"}),
    ("GET", "/docs", None),
    ("GET", "/openapi.json", None),
    ("GET", "/no/such/route", None),
]


def _call(
    server: LiveServer, method: str, path: str, body: object, headers: dict
) -> httpx.Response:
    return httpx.request(method, f"{server.url}{path}", json=body, headers=headers, timeout=30)


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"authorization": "Bearer wrong"},
        {"authorization": f"Basic {KEY}"},
        {"authorization": "Bearer"},
        {"x-api-key": KEY[:-1]},
        {"x-api-key": KEY + "x"},
    ],
)
def test_every_route_needs_the_key(
    server: LiveServer, method: str, path: str, body: object, headers: dict
) -> None:
    r = _call(server, method, path, body, headers)
    message = openai_error(r, 401)
    assert "API key" in message
    assert r.json()["error"]["type"] == "authentication_error"


def test_messages_answers_401_in_anthropic_shape(server: LiveServer) -> None:
    r = httpx.post(f"{server.url}/v1/messages", json=MESSAGE, timeout=30)
    assert "API key" in anthropic_error(r, 401, "authentication_error")


@pytest.mark.parametrize(
    "headers",
    [{"authorization": f"Bearer {KEY}"}, {"x-api-key": KEY}, {"Authorization": f"bearer {KEY}"}],
)
def test_the_key_in_either_header_opens_every_route(server: LiveServer, headers: dict) -> None:
    for method, path, body in ROUTES:
        r = _call(server, method, path, body, headers)
        assert r.status_code != 401, (path, r.text)
    r = httpx.post(f"{server.url}/v1/messages", json=MESSAGE, headers=headers, timeout=30)
    assert r.status_code == 200, r.text


def test_health_and_metrics_stay_open(server: LiveServer) -> None:
    assert server.get("/health").status_code == 200
    assert "hearth:engine_alive" in server.get("/metrics").text


def test_adapter_load_and_unload_need_the_key(
    server: LiveServer, tiny_adapters: dict[str, Path]
) -> None:
    body = {"lora_name": "keyed", "lora_path": str(tiny_adapters["alpha"])}
    openai_error(httpx.post(f"{server.url}/v1/load_lora_adapter", json=body), 401)
    auth = {"authorization": f"Bearer {KEY}"}
    r = httpx.post(f"{server.url}/v1/load_lora_adapter", json=body, headers=auth, timeout=60)
    assert r.status_code == 200, r.text
    unload = {"lora_name": "keyed"}
    openai_error(httpx.post(f"{server.url}/v1/unload_lora_adapter", json=unload), 401)
    r = httpx.post(f"{server.url}/v1/unload_lora_adapter", json=unload, headers=auth)
    assert r.json()["status"] == "unloaded"


def test_official_sdks_send_the_key(server: LiveServer) -> None:
    openai = pytest.importorskip("openai")
    anthropic = pytest.importorskip("anthropic")
    good = openai.OpenAI(base_url=f"{server.url}/v1", api_key=KEY, max_retries=0)
    assert good.chat.completions.create(**CHAT).choices[0].finish_reason
    bad = openai.OpenAI(base_url=f"{server.url}/v1", api_key="nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(**CHAT)
    claude = anthropic.Anthropic(base_url=server.url, api_key=KEY, max_retries=0)
    reply = claude.messages.create(
        model=MODEL, max_tokens=2, messages=[{"role": "user", "content": "Hi"}]
    )
    assert reply.type == "message"
    wrong = anthropic.Anthropic(base_url=server.url, api_key="nope", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError):
        wrong.messages.create(
            model=MODEL, max_tokens=2, messages=[{"role": "user", "content": "x"}]
        )


def test_without_a_key_everything_is_open(tiny_dir: Path) -> None:
    engine = tiny_engine(tiny_dir)
    try:
        with live_server(engine) as server:
            assert server.post("/v1/chat/completions", CHAT).status_code == 200
    finally:
        engine.shutdown()
