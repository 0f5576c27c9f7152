"""When the engine dies anyway: requests in flight fail at once in their dialect, /health
says why, and the process exits non-zero so that Kubernetes restarts it."""

from __future__ import annotations

import concurrent.futures
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from hearth_server.cli import serve
from tests.server.http_support import (
    MODEL,
    anthropic_error,
    live_server,
    openai_error,
    settings,
    sse_data,
    tiny_engine,
)

LONG = {"max_tokens": 60, "ignore_eos": True, "temperature": 0}
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], **LONG}


def _wait_for(condition: Any, what: str, tries: int = 1000) -> None:
    for _ in range(tries):
        if condition():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting until {what}")


def _anthropic_sse(text: str) -> list[tuple[str, dict[str, Any]]]:
    events, kind = [], ""
    for line in text.splitlines():
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: "):
            events.append((kind, json.loads(line[6:])))
    return events


def test_in_flight_requests_fail_in_their_dialect_and_health_says_why(tiny_dir: Path) -> None:
    engine = tiny_engine(tiny_dir, crash_after_steps=3)
    gate = threading.Event()  # holds the first step until every request is submitted
    step = engine.runner.step

    def gated_step(*args: Any, **kwargs: Any) -> Any:
        gate.wait(60)
        return step(*args, **kwargs)

    engine.runner.step = gated_step  # type: ignore[method-assign]
    requests = {
        "chat": ("/v1/chat/completions", CHAT),
        "chat-stream": ("/v1/chat/completions", {**CHAT, "stream": True}),
        "completion": ("/v1/completions", {"model": MODEL, "prompt": "Hi", **LONG}),
        "messages": ("/v1/messages", CHAT),
        "messages-stream": ("/v1/messages", {**CHAT, "stream": True}),
    }
    try:
        with live_server(engine) as server, concurrent.futures.ThreadPoolExecutor(5) as pool:
            futures = {k: pool.submit(server.post, p, b) for k, (p, b) in requests.items()}
            _wait_for(
                lambda: len(engine.running) + engine.num_waiting == len(requests),
                "every request is in the engine",
            )
            gate.set()
            got = {k: f.result(timeout=60) for k, f in futures.items()}

            assert "engine failed" in openai_error(got["chat"], 500)
            assert "engine failed" in openai_error(got["completion"], 500)
            assert "engine failed" in anthropic_error(got["messages"], 500, "api_error")
            events = sse_data(got["chat-stream"].text)
            errors = [e for e in events if isinstance(e, dict) and "error" in e]
            assert len(errors) == 1 and "engine failed" in errors[0]["error"]["message"]
            assert events[-1] == "[DONE]"
            kinds = _anthropic_sse(got["messages-stream"].text)
            assert kinds[-1][0] == "error"
            assert kinds[-1][1]["error"]["type"] == "api_error"
            assert "engine failed" in kinds[-1][1]["error"]["message"]

            health = server.get("/health")
            assert health.status_code == 503
            reason = health.json()["error"]["message"]
            assert reason.startswith("engine failed: InjectedEngineFault"), reason
            assert "engine failed" in openai_error(server.post("/v1/chat/completions", CHAT), 503)
            assert "engine failed" in anthropic_error(server.post("/v1/messages", CHAT), 503)
            assert 'hearth:engine_alive{model_name="tiny"} 0.0' in server.get("/metrics").text
    finally:
        gate.set()
        engine.shutdown()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_exits_1_after_an_engine_failure(tiny_dir: Path) -> None:
    engine = tiny_engine(tiny_dir, crash_after_steps=1)
    port = _free_port()
    cfg = settings(host="127.0.0.1", port=port, engine_failure_exit_delay=0.2)
    status: list[int] = []
    thread = threading.Thread(target=lambda: status.append(serve(cfg, "warning", engine)))
    thread.start()
    try:
        url = f"http://127.0.0.1:{port}"

        def healthy() -> bool:
            try:
                return httpx.get(f"{url}/health").status_code == 200
            except httpx.TransportError:
                return False

        _wait_for(healthy, "the server is up", tries=3000)
        r = httpx.post(f"{url}/v1/chat/completions", json=CHAT, timeout=60)
        assert "engine failed" in openai_error(r, 500)
        thread.join(timeout=60)
        assert not thread.is_alive(), "the server did not stop after the engine failed"
        assert status == [1]
    finally:
        engine.shutdown()


@pytest.mark.slow
def test_the_process_exits_non_zero_when_its_engine_dies(tiny_dir: Path, tmp_path: Path) -> None:
    """The real command line, with the engine's fault hook: what a liveness probe and the
    pod's restartPolicy rely on."""
    port = _free_port()
    env = {**os.environ, "HEARTH_SERVER_CRASH_ENGINE_AFTER_STEPS": "2", "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "hearth_server", "serve", str(tiny_dir)]
    cmd += ["--served-model-name", MODEL, "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--engine-failure-exit-delay", "0.5", "--log-level", "warning"]
    log = tmp_path / "server.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:

        def healthy() -> bool:
            assert proc.poll() is None, log.read_text()
            try:
                return httpx.get(f"{url}/health").status_code == 200
            except httpx.TransportError:
                return False

        _wait_for(healthy, "the server is up", tries=12000)
        r = httpx.post(f"{url}/v1/chat/completions", json=CHAT, timeout=60)
        assert "engine failed" in openai_error(r, 500)
        assert proc.wait(timeout=60) == 1, log.read_text()
        assert "exiting in 0.5s" in log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
