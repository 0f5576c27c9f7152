"""The real HTTP server (uvicorn, a real socket) in a thread, on the tiny llama engine.

Used by the test_http_*.py and test_fuzz_*.py modules: everything the client sends goes
through uvicorn's HTTP parser, the ASGI middleware and FastAPI, as in production.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from hearth_server.api.app import build_app
from hearth_server.api.state import ServerState
from hearth_server.config import ServerSettings
from hearth_server.engine.engine import Engine, EngineConfig
from tests.server.conftest import load_tiny

MODEL = "tiny"


def tiny_engine(tiny_dir: Path, **overrides: Any) -> Engine:
    """A started engine on the tiny llama (small limits so tests stay quick)."""
    model, tok = load_tiny(tiny_dir)
    cfg = EngineConfig(max_model_len=128, max_num_seqs=8, max_loras=2, max_cpu_loras=2)
    for key, value in overrides.items():
        setattr(cfg, key, value)
    engine = Engine(model, tok, cfg)
    engine.start()
    return engine


@dataclass
class LiveServer:
    url: str
    app: FastAPI

    @property
    def state(self) -> ServerState:
        state: ServerState = self.app.state.hearth
        return state

    def post(self, path: str, body: Any, **kw: Any) -> httpx.Response:
        """POST ``body`` as JSON the way a lenient client would: NaN and lone surrogates
        (as \\ud800 escapes) are sent as they are."""
        raw = json.dumps(body, allow_nan=True).encode()
        headers = {"content-type": "application/json", **kw.pop("headers", {})}
        return httpx.post(f"{self.url}{path}", content=raw, headers=headers, timeout=60, **kw)

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return httpx.get(f"{self.url}{path}", timeout=30, **kw)


@contextlib.contextmanager
def serving(app: FastAPI) -> Iterator[LiveServer]:
    """Run ``app`` under uvicorn on a free local port until the block ends."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(2000):
            if server.started or not thread.is_alive():
                break
            time.sleep(0.01)
        assert server.started, "uvicorn did not start"
        yield LiveServer(f"http://127.0.0.1:{port}", app)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def settings(**kw: Any) -> ServerSettings:
    return ServerSettings(model="/models/tiny", served_model_name=MODEL, **kw)


@contextlib.contextmanager
def live_server(engine: Engine, **kw: Any) -> Iterator[LiveServer]:
    with serving(build_app(settings(**kw), engine=engine)) as server:
        yield server


def openai_error(resp: httpx.Response, status: int, param: str | None = None) -> str:
    """Assert an OpenAI error envelope; returns its message."""
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert set(err) >= {"message", "type", "param", "code"}, err
    assert err["code"] == status and isinstance(err["message"], str), err
    if param is not None:
        assert err["param"] == param, err
    return str(err["message"])


def anthropic_error(resp: httpx.Response, status: int, kind: str | None = None) -> str:
    """Assert an Anthropic error envelope; returns its message."""
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["type"] == "error" and isinstance(body["error"]["message"], str), body
    if kind is not None:
        assert body["error"]["type"] == kind, body
    return str(body["error"]["message"])


def sse_data(text: str) -> list[Any]:
    """The JSON payloads of an SSE body (``[DONE]`` kept as a string)."""
    events: list[Any] = []
    for line in text.splitlines():
        if line.startswith("data: "):
            data = line[6:]
            events.append(data if data == "[DONE]" else json.loads(data))
    return events
