"""Scale from zero: from the first request to a Deployment at zero until its answer.

A Deployment of the bundled SmolLM2 (``builtin://smollm2-135m-instruct``, CPU) sits at
zero replicas behind the real gateway; the real operator runs against the emulated API
server and the process kubelet runs the real hearth-server. One streaming chat request is
sent through the gateway and timed, split by what a poller saw of the replica's pod:

- scheduling: request sent -> the pod bound to a node (the gateway's raise of the scale,
  the operator creating the pod, the kubelet binding it);
- model load: bound -> the pod Ready (process start, imports, loading the weights from the
  converted-weights cache, the readiness probe);
- first token: Ready -> the first content token at the client (the gateway seeing the
  pod ready, forwarding, prefill, one decode step).

The peer is the floor: the same hearth-server started by hand on the same model (process
start to first token, no Kubernetes, no gateway). Each round scales the Deployment back to
zero first. The first round of a fresh cache also converts the GGUF (about 30 s); the
baseline runs first so the rounds measure the warm cache a cluster would have.

    .venv/bin/python bench/bench_scale_from_zero.py [--rounds 1]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hearth.local.kubelet import ProcessKubelet  # noqa: E402
from tests.gateway.component import free_port, read_key  # noqa: E402
from tests.gateway.test_gateway_component import api_key, gateway_process, user  # noqa: E402
from tests.harness.waiting import eventually  # noqa: E402
from tests.operator.conftest import Cluster, emulated_cluster, local_process_settings  # noqa: E402

MODEL_URI = "builtin://smollm2-135m-instruct"
RESOURCES = f"""
apiVersion: hearth.dev/v1alpha1
kind: Model
metadata: {{name: smollm2, namespace: acme}}
spec: {{kind: HF_BASE_MODEL, source: {{uri: '{MODEL_URI}'}}}}
---
apiVersion: hearth.dev/v1alpha1
kind: Deployment
metadata: {{name: cold, namespace: acme}}
spec: {{baseModel: smollm2, acceleratorType: CPU, minReplicaCount: 0}}
"""
PROMPT = [{"role": "user", "content": "What is the capital of France? One word."}]


@dataclass
class PodWatch:
    """First moments (time.perf_counter) the poller saw the pod in each stage."""

    cluster: Cluster
    seen: dict[str, float] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.is_set():
            now = time.perf_counter()
            for pod in self.cluster.pods("cold"):
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


def round_trip(cluster: Cluster, url: str, key: str, model: str) -> dict[str, Any]:
    watch = PodWatch(cluster)
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
        tmp = Path(tmp_name)
        settings = local_process_settings(tmp / "pvc", resync_seconds=1.0)
        with (
            emulated_cluster(settings, tmp) as cluster,
            ProcessKubelet(cluster.api, log_dir=tmp / "pod-logs", first_ip="127.79.0.1"),
            cluster.operator(),
        ):
            cluster.apply(
                "apiVersion: hearth.dev/v1alpha1\nkind: Account\nmetadata: {name: acme}\nspec: {}"
            )
            cluster.wait_state("Account", "acme", "READY", namespace=None)
            cluster.apply(
                "---".join([user("acme", "ann", "inference-user"), api_key("acme", "k", "ann")])
            )
            cluster.apply(RESOURCES)
            key = read_key(cluster, "acme", "k")
            eventually(  # the base DeployedModel the operator makes: the gateway routes to it
                lambda: cluster.kube.list(
                    "DeployedModel", "acme", labels={"hearth.dev/deployment": "cold"}
                ),
                timeout=60,
            )
            with gateway_process(cluster, tmp, tmp / "ledger.sqlite3") as url:
                for number in range(args.rounds):
                    cluster.kube.patch_scale("Deployment", "cold", "acme", 0)
                    eventually(lambda: not cluster.pods("cold"), timeout=120)
                    result = round_trip(cluster, url, key, "acme/smollm2#acme/cold")
                    print(f"round {number + 1}: {json.dumps(result)}", flush=True)
                    rounds.append(result)
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
