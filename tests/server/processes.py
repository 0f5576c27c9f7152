"""``hearth-server serve`` as a real process on a free local port, for the tests that need
the whole command line (the bundled SmolLM2 by default, or any model path)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

SMOLLM2 = "builtin://smollm2-135m-instruct"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(
    log_path: Path, *args: str, model: str = SMOLLM2
) -> tuple[subprocess.Popen[bytes], str]:
    """``hearth-server serve MODEL --host 127.0.0.1 --port <free> ARGS`` (offline), its
    output in ``log_path``: (the process, its URL). Not waited for: see ``wait_healthy``."""
    port = free_port()
    cmd = [sys.executable, "-m", "hearth_server.cli", "serve", model]
    cmd += ["--host", "127.0.0.1", "--port", str(port), *args]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    return proc, f"http://127.0.0.1:{port}"


def wait_healthy(
    proc: subprocess.Popen[bytes], url: str, log_path: Path, within: float = 300.0
) -> None:
    """Until ``/health`` answers 200; fails the test (with the log) if the process exits or
    ``within`` seconds pass."""
    deadline = time.monotonic() + within
    while True:
        if proc.poll() is not None:
            pytest.fail(f"server exited with {proc.returncode}:\n{log_path.read_text()}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        if time.monotonic() > deadline:
            pytest.fail(f"server never became healthy:\n{log_path.read_text()}")
        time.sleep(0.5)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=20)


@contextlib.contextmanager
def running_server(log_path: Path, *args: str, model: str = SMOLLM2) -> Iterator[str]:
    """A healthy server's URL for the block; stopped after it."""
    proc, url = start_server(log_path, *args, model=model)
    try:
        wait_healthy(proc, url, log_path)
        yield url
    finally:
        stop(proc)
