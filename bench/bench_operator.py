"""Operator scale benchmark: 1,000 Models, 200 Deployments and 500 DeployedModels at once.

Runs the real hearth-operator as its own process against the emulated Kubernetes API
(tests/harness) with a kubelet that marks pods ready without running them, and one small
HTTP endpoint standing in for every replica's adapter API (pods get distinct loopback
IPs; a server on 0.0.0.0 answers them all). Reports the time until everything is
READY/DEPLOYED, the operator's reconcile latency (from its own Prometheus histogram) and
its peak RSS, against the targets (60 s, 300 MB). No peer operator runs in Python on this
machine, so the ratios are to the targets.

    .venv/bin/python bench/bench_operator.py [--models 1000 --deployments 200 --lora 500]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import kubernetes
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hearth.local.emulator import KubeEmulatorServer  # noqa: E402
from hearth.local.emulator.hearth_rules import hearth_validator  # noqa: E402
from hearth.local.kubelet import ProcessKubelet  # noqa: E402
from hearth_operator.kube import Kube  # noqa: E402

TARGET_SECONDS = 60.0
TARGET_RSS_MB = 300.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class AdapterEndpoint(BaseHTTPRequestHandler):
    """Answers load/unload for every fake replica (any 127.x address reaches 0.0.0.0)."""

    calls = 0

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        AdapterEndpoint.calls += 1
        body = b'{"status": "ok"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def histogram_quantiles(metrics: str, name: str) -> dict[str, float]:
    """p50/p99 from a Prometheus histogram's cumulative buckets (all label sets summed)."""
    buckets: dict[float, float] = {}
    for line in metrics.splitlines():
        if line.startswith(f"{name}_bucket{{"):
            labels, value = line.rsplit(" ", 1)
            bound = labels.split('le="')[1].split('"')[0]
            upper = float("inf") if bound == "+Inf" else float(bound)
            buckets[upper] = buckets.get(upper, 0.0) + float(value)
    if not buckets:
        return {}
    total = buckets[float("inf")]
    result = {}
    for label, q in (("p50", 0.5), ("p99", 0.99)):
        result[label] = next(b for b in sorted(buckets) if buckets[b] >= q * total)
    result["count"] = total
    return result


def manifests(models: int, deployments: int, loras: int) -> list[dict]:
    objs: list[dict] = []

    def obj(kind: str, name: str, spec: dict) -> dict:
        return {
            "apiVersion": "hearth.dev/v1alpha1",
            "kind": kind,
            "metadata": {"name": name, "namespace": "bench"},
            "spec": spec,
        }

    for i in range(deployments):
        objs.append(
            obj(
                "Model",
                f"base-{i}",
                {"kind": "HF_BASE_MODEL", "source": {"uri": "builtin://smollm2-135m-instruct"}},
            )
        )
    addons = models - deployments
    for i in range(addons):
        objs.append(
            obj(
                "Model",
                f"lora-{i}",
                {
                    "kind": "HF_PEFT_ADDON",
                    "source": {"uri": f"pvc://artifacts/adapters/lora-{i}"},
                    "peftDetails": {"baseModel": f"base-{i % deployments}", "r": 8},
                },
            )
        )
    for i in range(deployments):
        objs.append(
            obj(
                "Deployment",
                f"dep-{i}",
                {
                    "baseModel": f"base-{i}",
                    "acceleratorType": "CPU",
                    "minReplicaCount": 1,
                    "enableAddons": True,
                    "numPeftDeviceCached": 4,
                    "numPeftHostCached": 16,
                },
            )
        )
    for i in range(loras):
        objs.append(
            obj(
                "DeployedModel",
                f"lora-{i}-on-dep",
                {"model": f"lora-{i}", "deployment": f"dep-{i % deployments}"},
            )
        )
    return objs


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--deployments", type=int, default=200)
    parser.add_argument("--lora", type=int, default=500)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "operator.json"))
    args = parser.parse_args()

    port = free_port()
    endpoint = ThreadingHTTPServer(("0.0.0.0", port), AdapterEndpoint)
    threading.Thread(target=endpoint.serve_forever, daemon=True).start()
    workdir = Path(os.environ.get("TMPDIR", "/tmp")) / f"hearth-bench-operator-{os.getpid()}"
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "operator.yaml"
    config.write_text(yaml.safe_dump({"server_port": port, "resync_seconds": 30.0}))
    metrics_port = free_port()

    with (
        KubeEmulatorServer(
            crds=[ROOT / "crds"], validators=[hearth_validator()], record_requests=False
        ) as api,
        ProcessKubelet(api, fake_ready=True, log_dir=workdir / "logs"),
    ):
        configuration = kubernetes.client.Configuration()
        kubernetes.config.load_kube_config(
            config_file=str(api.kubeconfig_path), client_configuration=configuration
        )
        kube = Kube(kubernetes.client.ApiClient(configuration))
        kube.create(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "hearth-system"}}
        )
        operator_log = (workdir / "operator.log").open("w")
        operator = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "hearth_operator",
                "--kubeconfig",
                str(api.kubeconfig_path),
                "--liveness",
                "",
                "--metrics-port",
                str(metrics_port),
                "--log-level",
                "WARNING",
            ],
            env={**os.environ, "HEARTH_OPERATOR_CONFIG": str(config)},
            start_new_session=True,
            stderr=operator_log,
        )
        try:
            kube.create(
                {
                    "apiVersion": "hearth.dev/v1alpha1",
                    "kind": "Account",
                    "metadata": {"name": "bench"},
                    "spec": {},
                }
            )
            deadline = time.monotonic() + 60
            while kube.get("Namespace", "bench") is None:
                if time.monotonic() > deadline:
                    raise SystemExit("the operator never created the account namespace")
                time.sleep(0.2)
            objs = manifests(args.models, args.deployments, args.lora)
            started = time.monotonic()
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(kube.create, objs))
            created = time.monotonic() - started
            print(f"created {len(objs)} objects in {created:.1f} s", flush=True)
            ready_at: dict[str, float] = {}
            wanted = {("Model", "READY"), ("Deployment", "READY"), ("DeployedModel", "DEPLOYED")}
            expected = len(objs) + args.deployments  # + the base DeployedModels
            while time.monotonic() - started < args.timeout:
                for kind, state in wanted:
                    for item in kube.list(kind, "bench"):
                        key = f"{kind}/{item['metadata']['name']}"
                        if key not in ready_at and (item.get("status") or {}).get("state") == state:
                            ready_at[key] = time.monotonic() - started
                if len(ready_at) >= expected:
                    break
                time.sleep(0.5)
            total = max(ready_at.values()) if len(ready_at) >= expected else float("inf")
            metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
            latency = histogram_quantiles(metrics, "hearth_operator_reconcile_duration_seconds")
            rss = peak_rss_mb(operator.pid)
            print(f"all ready: {len(ready_at)}/{expected} after {total:.1f} s", flush=True)
        finally:
            os.killpg(operator.pid, signal.SIGTERM)
            try:
                operator.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(operator.pid, signal.SIGKILL)
                operator.wait()
            endpoint.shutdown()
    times = sorted(ready_at.values())
    result = {
        "objects": {
            "models": args.models,
            "deployments": args.deployments,
            "deployedModels": args.lora,
            "baseDeployedModels": args.deployments,
        },
        "ready": len(ready_at),
        "expected": expected,
        "all_ready_seconds": total,
        "object_ready_p50_seconds": times[len(times) // 2] if times else None,
        "reconcile_latency_seconds": latency,
        "adapter_load_calls": AdapterEndpoint.calls,
        "operator_peak_rss_mb": round(rss, 1),
        "targets": {"all_ready_seconds": TARGET_SECONDS, "rss_mb": TARGET_RSS_MB},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"{'metric':34} {'value':>10} {'target':>10} {'ratio':>7}")
    print(
        f"{'all READY/DEPLOYED (s)':34} {total:10.1f} {TARGET_SECONDS:10.0f} "
        f"{total / TARGET_SECONDS:7.2f}"
    )
    print(
        f"{'operator peak RSS (MB)':34} {rss:10.1f} {TARGET_RSS_MB:10.0f} "
        f"{rss / TARGET_RSS_MB:7.2f}"
    )
    if latency:
        print(f"{'reconcile latency p50 (s, bucket)':34} {latency['p50']:10.3f}")
        print(f"{'reconcile latency p99 (s, bucket)':34} {latency['p99']:10.3f}")
        print(f"{'reconciles':34} {latency['count']:10.0f}")
    print(f"{'objects ready':34} {len(ready_at):10d} {expected:10d}")
    print(f"wrote {out}")
    return 0 if len(ready_at) >= expected else 1


if __name__ == "__main__":
    raise SystemExit(main())
