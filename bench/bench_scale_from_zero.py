"""Scale from zero: from the first request to a Deployment at zero until its answer.

A Deployment of the bundled SmolLM2 (``builtin://smollm2-135m-instruct``, CPU) sits at
zero replicas behind the real gateway. Everything runs as ``hearthctl local up`` runs it
(``hearth.local.stack.LocalHearth``): the emulated API server and the process kubelet in
this process, the real operator and gateway as child processes, the real hearth-server as
the pod. One streaming chat request is sent through the gateway and timed, split by what a
poller saw of the replica's pod:

- scheduling: request sent -> the pod bound to a node (the gateway's raise of the scale,
  the operator creating the pod, the kubelet binding it);
- model load: bound -> the pod Ready (process start, imports, loading the weights from the
  converted-weights cache, the readiness probe);
- first token: Ready -> the first content token at the client (the gateway seeing the
  pod ready, forwarding, prefill, one decode step).

The peer is the floor: the same hearth-server started by hand on the same model (process
start to first token, no Kubernetes, no gateway). Each round scales the Deployment back to
zero first, through the REST API's ``:scale``. The first round of a fresh cache also
converts the GGUF (about 30 s); the baseline runs first so the rounds measure the warm cache
a cluster would have.

    .venv/bin/python bench/bench_scale_from_zero.py [--rounds 1]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from hearth.local.stack import GROUP_VERSION, LocalHearth, UpOptions
from hearth.local.state import RUN_ENV, LocalPaths

ROOT = Path(__file__).resolve().parents[1]
ACCOUNT = "acme"
MODEL_URI = "builtin://smollm2-135m-instruct"
RESOURCES: list[dict[str, Any]] = [
    {
        "apiVersion": GROUP_VERSION,
        "kind": "Model",
        "metadata": {"name": "smollm2", "namespace": ACCOUNT},
        "spec": {"kind": "HF_BASE_MODEL", "source": {"uri": MODEL_URI}},
    },
    {
        "apiVersion": GROUP_VERSION,
        "kind": "Deployment",
        "metadata": {"name": "cold", "namespace": ACCOUNT},
        "spec": {"baseModel": "smollm2", "acceleratorType": "CPU", "minReplicaCount": 0},
    },
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def eventually(condition: Callable[[], Any], timeout: float, interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return
        except (httpx.HTTPError, OSError):
            pass  # not up yet
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {timeout:.0f} s")
        time.sleep(interval)


PROMPT = [{"role": "user", "content": "What is the capital of France? One word."}]


@dataclass
class PodWatch:
    """First moments (time.perf_counter) the poller saw the pod in each stage."""

    local: LocalHearth
    seen: dict[str, float] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.is_set():
            now = time.perf_counter()
            for pod in pods(self.local, "cold"):
                if pod["metadata"].get("deletionTimestamp"):
                    continue
                status = pod.get("status") or {}
                conditions = {c["type"]: c["status"] for c in status.get("conditions") or []}
                stages = {
                    "created": True,
                    "scheduled": bool(pod["spec"].get("nodeName"))
                    or conditions.get("PodScheduled") == "True",
                    "running": status.get("phase") == "Running",
                    "ready": conditions.get("Ready") == "True",
                }
                for stage, reached in stages.items():
                    if reached:
                        self.seen.setdefault(stage, now)
            time.sleep(0.02)


def stream_first_token(url: str, key: str, model: str) -> tuple[float, float, str]:
    """(first content token, whole answer) in perf_counter time, and the answer."""
    first = 0.0
    text = ""
    body = {"model": model, "messages": PROMPT, "max_tokens": 8, "stream": True}
    headers = {"authorization": f"Bearer {key}"} if key else {}
    with httpx.stream(
        "POST", f"{url}/v1/chat/completions", json=body, headers=headers, timeout=600
    ) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[len("data: ") :])
            for choice in chunk.get("choices") or []:
                content = (choice.get("delta") or {}).get("content")
                if content:
                    text += content
                    first = first or time.perf_counter()
    return first, time.perf_counter(), text


def pods(local: LocalHearth, deployment: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = local.api.list(
        "v1", "Pod", ACCOUNT, label_selector=f"hearth.dev/deployment={deployment}"
    )
    return found


def round_trip(local: LocalHearth, url: str, key: str, model: str) -> dict[str, Any]:
    watch = PodWatch(local)
    poller = threading.Thread(target=watch.run, daemon=True)
    poller.start()
    sent = time.perf_counter()
    try:
        first, done, text = stream_first_token(url, key, model)
    finally:
        watch.stop.set()
        poller.join()
    seen = watch.seen
    return {
        "scheduling_s": seen["scheduled"] - sent,
        "model_load_s": seen["ready"] - seen["scheduled"],
        "first_token_s": first - seen["ready"],
        "request_to_first_token_s": first - sent,
        "request_to_answer_s": done - sent,
        "answer": text,
    }


def baseline(cache: str) -> dict[str, Any]:
    """hearth-server started by hand: process start -> ready -> first token."""
    port = free_port()
    env = {**os.environ, "HEARTH_CACHE_DIR": cache, "HF_HUB_OFFLINE": "1", "POD_IP": "127.0.0.1"}
    command = [sys.executable, "-m", "hearth_server.cli", "serve", MODEL_URI, "--port", str(port)]
    started = time.perf_counter()
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        eventually(
            lambda: httpx.get(f"{url}/health", timeout=2).status_code == 200,
            timeout=600,
            interval=0.02,
        )
        ready = time.perf_counter()
        models = httpx.get(f"{url}/v1/models", timeout=10).json()["data"]
        first, _, text = stream_first_token(url, "", models[0]["id"])
        return {
            "model_load_s": ready - started,
            "first_token_s": first - ready,
            "start_to_first_token_s": first - started,
            "answer": text,
        }
    finally:
        process.terminate()
        process.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    from hearth_server.models.resolve import cache_dir

    floor = baseline(str(cache_dir()))
    print(f"baseline hearth-server: {json.dumps(floor)}", flush=True)
    rounds: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        options = UpOptions(
            api_port=free_port(), gateway_port=free_port(), account=ACCOUNT, timeout=300
        )
        local = LocalHearth(LocalPaths(Path(tmp_name) / "home"), options)
        os.environ[RUN_ENV] = local.run_id  # so that stop() finds every process it started
        try:
            state = local.start()
            for obj in RESOURCES:
                local.api.apply(obj)
            # The base DeployedModel the operator makes: the gateway routes to it.
            eventually(
                lambda: local.api.list(
                    GROUP_VERSION, "DeployedModel", ACCOUNT, "hearth.dev/deployment=cold"
                ),
                timeout=120,
            )
            url, key = options.gateway_url, state.api_key
            headers = {"authorization": f"Bearer {key}"}
            for number in range(args.rounds):
                httpx.post(
                    f"{url}/v1/accounts/{ACCOUNT}/deployments/cold:scale",
                    json={"replicaCount": 0},
                    headers=headers,
                    timeout=30,
                ).raise_for_status()
                eventually(lambda: not pods(local, "cold"), timeout=120)
                result = round_trip(local, url, key, f"{ACCOUNT}/smollm2#{ACCOUNT}/cold")
                print(f"round {number + 1}: {json.dumps(result)}", flush=True)
                rounds.append(result)
        finally:
            local.stop()
    report = {
        "model": MODEL_URI,
        "baseline": floor,
        "rounds": rounds,
        "overhead_ratio": [
            r["request_to_first_token_s"] / floor["start_to_first_token_s"] for r in rounds
        ],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"bench_scale_from_zero_{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(report, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
