"""The parts of the gateway's component tests that run the real gateway process.

Shared by ``test_gateway_component.py`` and ``test_gateway_failover.py``: each builds its
own emulated cluster (operator, process kubelet, hearth-server pods) and then starts
``hearth-gateway`` in front of it with :func:`gateway_process`.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from hearth_operator.constants import user_api_key_secret_name
from hearth_operator.planning.api_key import key_from_secret
from tests.harness.waiting import eventually
from tests.operator.conftest import Cluster


@dataclass
class Stack:
    cluster: Cluster
    url: str
    keys: dict[str, str]
    ledger_path: Path

    def post(self, path: str, key: str | None, body: dict, **kwargs) -> httpx.Response:
        headers = {"authorization": f"Bearer {key}"} if key else {}
        return httpx.post(f"{self.url}{path}", json=body, headers=headers, timeout=120, **kwargs)

    def chat(self, key: str, model: str, **extra) -> httpx.Response:
        body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
        return self.post("/v1/chat/completions", key, {**body, **extra})


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def read_key(cluster: Cluster, namespace: str, name: str) -> str:
    cluster.wait_state("ApiKey", name, "READY", namespace=namespace, timeout=60)
    secret = cluster.get("Secret", user_api_key_secret_name(name), namespace)
    key = key_from_secret(secret)
    assert key, f"ApiKey {namespace}/{name} has no key in its Secret"
    return key


@contextmanager
def gateway_process(
    cluster: Cluster, tmp: Path, *args: str
) -> Iterator[tuple[str, Path, subprocess.Popen[bytes]]]:
    """``hearth-gateway`` as its own process on a free port, reading the cluster through
    its kubeconfig, its ledger a SQLite file in ``tmp``: (URL, ledger path, process).
    Its log is printed (the end of it) when it stops."""
    port = free_port()
    ledger_path = tmp / "ledger.sqlite3"
    log = (tmp / "gateway.log").open("w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hearth_gateway.cli",
            "--kubeconfig",
            str(cluster.api.kubeconfig_path),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            *args,
        ],
        env={**os.environ, "HEARTH_GATEWAY_LEDGER_PATH": str(ledger_path)},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        eventually(
            lambda: process.poll() is None and httpx.get(f"{url}/health").status_code == 200,
            timeout=60,
            message="the gateway never became healthy",
        )
        yield url, ledger_path, process
    finally:
        process.terminate()
        process.wait(30)
        log.close()
        print((tmp / "gateway.log").read_text()[-5000:])
