"""Hearth's main job on one machine, until the operator lands.

Starts the real ``hearth-server`` on the bundled SmolLM2-135M-Instruct, waits until it is
healthy, asks it a question through the official OpenAI SDK (and the Anthropic SDK), prints
the answers and stops the server. Run with ``make quickstart``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

MODEL = "builtin://smollm2-135m-instruct"
STARTUP_TIMEOUT_S = 600  # the first start converts the GGUF to safetensors once


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(url: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"hearth-server exited with status {server.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise SystemExit(f"hearth-server was not healthy after {STARTUP_TIMEOUT_S} s")


def main() -> int:
    from anthropic import Anthropic
    from openai import OpenAI

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "hearth_server.cli", "serve", MODEL, "--port", str(port)]
    print("$", " ".join(command[2:]), flush=True)
    server = subprocess.Popen(command, start_new_session=True)
    try:
        wait_healthy(url, server)
        openai = OpenAI(base_url=f"{url}/v1", api_key=os.environ.get("HEARTH_API_KEY", "none"))
        models = [m.id for m in openai.models.list().data]
        print(f"models: {models}")
        question = "What is the capital of France? Answer in one sentence."
        chat = openai.chat.completions.create(
            model=models[0],
            messages=[{"role": "user", "content": question}],
            max_tokens=40,
            temperature=0,
        )
        print(f"OpenAI SDK    > {question}\n              < {chat.choices[0].message.content}")
        print(f"usage: {chat.usage}")
        anthropic = Anthropic(base_url=url, api_key="none")
        message = anthropic.messages.create(
            model=models[0],
            max_tokens=40,
            temperature=0,
            messages=[{"role": "user", "content": "Name a primary colour."}],
        )
        text = "".join(block.text for block in message.content if block.type == "text")
        print(f"Anthropic SDK > Name a primary colour.\n              < {text}")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
