"""Gateway overhead: the same load through hearth-gateway and straight to the replica.

    .venv/bin/python bench/bench_gateway.py [--quick] [--reps 3] [--skip-real]

The gateway runs as ``hearth-gateway`` does (its own process), against the emulated
Kubernetes API (tests/harness) holding objects written here as the operator would leave
them: an Account, a User, an ApiKey with its hash in status, Models, Deployments,
DeployedModels (DEPLOYED, default) and one Ready pod per Deployment whose IP:port is the
upstream. No operator or kubelet runs. Upstreams:

* a stub: a small asyncio HTTP server (a subprocess) answering OpenAI-shaped chat
  completions, whole or streamed as SSE, ``max_tokens`` events, each ``stub_token_ms``
  after the previous one (a paced server, like a GPU replica's token rate);
* hearth-server on the tiny random Llama of the tests (``--model`` for another URI).

Measured, direct and through the gateway alternating (A/B, order swapped each
repetition), each ratio taken within one repetition and the median reported:

* stream throughput (tokens/s) at 16 and 64 concurrent streams, on both upstreams
  (target >= 0.95 of direct);
* added latency per request, p50/p99, one request at a time on the stub (target p50 <=
  2 ms), whole answers and streams (time to first token);
* requests per second with the gateway pinned to one core (``os.sched_setaffinity``),
  64 concurrent whole answers from the unpaced stub, and the gateway's CPU time per
  request (robust to other load: 1 / that is the one-core ceiling);
* the gateway's RSS with 10,000 ApiKeys and 1,000 DeployedModels cached (a second
  emulated API and gateway, loaded through the same list+watch code).

The load client is a raw asyncio HTTP/1.1 keep-alive client (one connection per
concurrent stream), so that its own cost stays small next to the gateway's. The gateway
is pinned to CPU 0, the client and the stub to CPU 1 (when the machine has 2 CPUs or
more); hearth-server is not pinned. Prints a table and writes JSON to bench/results/.
Not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hearth.api_keys import generate_key, hash_key, key_prefix, new_salt  # noqa: E402
from hearth.local.emulator import KubeEmulatorServer  # noqa: E402
from hearth.local.emulator.patching import MERGE_PATCH  # noqa: E402

ACCOUNT = "bench"
HEARTH_API = "hearth.dev/v1alpha1"
PROMPT = [{"role": "user", "content": "Write a short story about a robot who paints."}]
Obj = dict[str, Any]


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pin(pid: int, cpus: set[int]) -> None:
    """Pin a process to ``cpus`` where the machine has them (no-op on one CPU)."""
    available = os.sched_getaffinity(0) | set(range(os.cpu_count() or 1))
    wanted = cpus & available
    if wanted and len(available) > 1:
        os.sched_setaffinity(pid, wanted)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def wait_healthy(url: str, proc: subprocess.Popen[bytes], what: str, within: float) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited during startup (status {proc.returncode})")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not become healthy within {within:g} s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- the stub upstream (runs as `bench_gateway.py stub --port N`) ---------------------------
def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


async def _stub_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            body = json.loads(await reader.readexactly(length)) if length else {}
            if not head.startswith(b"POST"):
                ok = b'{"status": "ok"}'
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(ok), ok))
                continue
            model = json.dumps(body.get("model", "stub")).encode()
            tokens = int(body.get("max_tokens") or 16)
            pause = float(body.get("stub_token_ms") or 0) / 1000
            usage = b'{"prompt_tokens": 12, "completion_tokens": %d, "total_tokens": %d}' % (
                tokens,
                tokens + 12,
            )
            if not body.get("stream"):
                answer = (
                    b'{"id": "chatcmpl-stub", "object": "chat.completion", "created": 0, '
                    b'"model": %s, "choices": [{"index": 0, "message": {"role": "assistant", '
                    b'"content": "%s"}, "finish_reason": "length"}], "usage": %s}'
                    % (model, b"tok " * tokens, usage)
                )
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                    b"content-length: %d\r\n\r\n%s" % (len(answer), answer)
                )
                continue
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                b"transfer-encoding: chunked\r\n\r\n"
            )
            prefix = b'data: {"id": "chatcmpl-stub", "object": "chat.completion.chunk", '
            event = _chunk(
                prefix + b'"created": 0, "model": %s, "choices": [{"index": 0, "delta": '
                b'{"content": "tok "}, "finish_reason": null}]}\n\n' % model
            )
            for _ in range(tokens):
                writer.write(event)
                if pause:
                    await writer.drain()
                    await asyncio.sleep(pause)
            if (body.get("stream_options") or {}).get("include_usage"):
                writer.write(
                    _chunk(
                        prefix
                        + b'"created": 0, "model": %s, "choices": [], "usage": %s}\n\n'
                        % (model, usage)
                    )
                )
            writer.write(_chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


def serve_stub(port: int) -> None:
    async def main() -> None:
        server = await asyncio.start_server(_stub_connection, "127.0.0.1", port, backlog=1024)
        print("ready", flush=True)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


@contextlib.contextmanager
def stub_upstream() -> Iterator[tuple[int, int]]:
    """(port, pid) of the stub, in a subprocess pinned to CPU 1."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, __file__, "stub", "--port", str(port)], stdout=subprocess.PIPE
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
        pin(proc.pid, {1})
        yield port, proc.pid
    finally:
        stop(proc)


# -- the load client ------------------------------------------------------------------------
@dataclass
class Answer:
    status: int
    first: float  # seconds to the first body bytes
    total: float  # seconds to the last
    body: bytes


class Connection:
    """One keep-alive HTTP/1.1 connection; one request at a time."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, path: str, body: bytes, headers: bytes) -> Answer:
        if self.writer is None or self.writer.is_closing():
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        start = time.perf_counter()
        self.writer.write(
            b"POST %s HTTP/1.1\r\nhost: %s\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\n%s\r\n%s"
            % (path.encode(), self.host.encode(), len(body), headers, body)
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        lower = head.lower()
        parts: list[bytes] = []
        first = 0.0
        if b"transfer-encoding: chunked" in lower:
            while True:
                size = int((await self.reader.readuntil(b"\r\n"))[:-2], 16)
                if size == 0:
                    await self.reader.readuntil(b"\r\n")
                    break
                parts.append((await self.reader.readexactly(size + 2))[:-2])
                if not first:
                    first = time.perf_counter() - start
        else:
            found = re.search(rb"content-length: *(\d+)", lower)
            parts.append(await self.reader.readexactly(int(found.group(1)) if found else 0))
        total = time.perf_counter() - start
        if b"connection: close" in lower:
            self.writer.close()
        return Answer(status, first or total, total, b"".join(parts))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


@dataclass
class Target:
    """Where to send: host:port, and the extra header lines (the API key)."""

    name: str
    host: str
    port: int
    headers: bytes = b""
    #: The process behind it, where the benchmark started it.
    pid: int = 0


@dataclass
class LoadResult:
    wall: float
    answers: list[Answer] = field(default_factory=list)
    tokens: int = 0
    errors: int = 0

    @property
    def rps(self) -> float:
        return len(self.answers) / self.wall

    @property
    def tok_s(self) -> float:
        return self.tokens / self.wall


_USAGE = re.compile(rb'"completion_tokens": *(\d+)')


def completion_tokens(answer: Answer) -> int:
    found = _USAGE.findall(answer.body)
    return int(found[-1]) if found else 0


async def load(target: Target, body: Obj, concurrency: int, requests: int) -> LoadResult:
    """``requests`` requests over ``concurrency`` connections, as fast as they go."""
    raw = json.dumps(body).encode()
    left = requests
    result = LoadResult(0.0)

    async def worker() -> None:
        nonlocal left
        conn = Connection(target.host, target.port)
        try:
            while left > 0:
                left -= 1
                answer = await conn.request("/v1/chat/completions", raw, target.headers)
                if answer.status != 200 or (body.get("stream") and b"[DONE]" not in answer.body):
                    result.errors += 1
                    continue
                result.answers.append(answer)
                result.tokens += completion_tokens(answer)
        finally:
            conn.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.wall = time.perf_counter() - start
    if result.errors:
        log(f"  {target.name}: {result.errors} failed requests")
    return result


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# -- the emulated cluster -------------------------------------------------------------------
def meta(name: str, namespace: str | None = None, **extra: Any) -> Obj:
    return {"name": name, **({"namespace": namespace} if namespace else {}), **extra}


class Cluster:
    """Objects written straight into the emulated API, statuses included."""

    def __init__(self, api: KubeEmulatorServer) -> None:
        self.api = api

    def put(self, obj: Obj, status: Obj | None = None) -> None:
        self.api.create(obj)
        if status is not None:
            store = self.api.emulator.store
            rtype = self.api.emulator.registry.find_kind(obj["apiVersion"], obj["kind"])
            assert rtype is not None
            name, namespace = obj["metadata"]["name"], obj["metadata"].get("namespace")
            patch = {"status": status}
            self.api.call(lambda: store.patch(rtype, namespace, name, patch, MERGE_PATCH, "status"))

    def account(self, name: str) -> None:
        self.put({"apiVersion": "v1", "kind": "Namespace", "metadata": meta(name)})
        self.put(
            {"apiVersion": HEARTH_API, "kind": "Account", "metadata": meta(name), "spec": {}},
            {"state": "READY"},
        )

    def user(self, namespace: str, name: str) -> None:
        self.put(
            {
                "apiVersion": HEARTH_API,
                "kind": "User",
                "metadata": meta(name, namespace),
                "spec": {"role": "user", "email": f"{name}@{namespace}.example"},
            },
        )

    def api_key(self, namespace: str, name: str, user: str) -> str:
        key, salt = generate_key(), new_salt()
        self.put(
            {
                "apiVersion": HEARTH_API,
                "kind": "ApiKey",
                "metadata": meta(name, namespace),
                "spec": {"user": user},
            },
            {
                "state": "READY",
                "prefix": key_prefix(key),
                "salt": salt,
                "keyHash": hash_key(key, salt),
            },
        )
        return key

    def model(self, namespace: str, name: str) -> None:
        self.put(
            {
                "apiVersion": HEARTH_API,
                "kind": "Model",
                "metadata": meta(name, namespace),
                "spec": {"kind": "HF_BASE_MODEL", "source": {"uri": f"pvc://artifacts/{name}"}},
            },
        )

    def deployment(self, namespace: str, name: str, model: str) -> None:
        self.put(
            {
                "apiVersion": HEARTH_API,
                "kind": "Deployment",
                "metadata": meta(name, namespace),
                "spec": {"baseModel": model, "acceleratorType": "CPU", "minReplicaCount": 1},
            },
        )

    def deployed_model(self, namespace: str, name: str, model: str, deployment: str) -> None:
        self.put(
            {
                "apiVersion": HEARTH_API,
                "kind": "DeployedModel",
                "metadata": meta(name, namespace),
                "spec": {"model": model, "deployment": deployment},
            },
            {"state": "DEPLOYED", "default": True},
        )

    def pod(self, namespace: str, deployment: str, name: str, ip: str, port: int) -> None:
        """A Ready model-server pod whose server is at ``ip:port`` (how the gateway's
        cache decides: phase Running, condition Ready True, a podIP, the ``http`` port)."""
        self.put(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": meta(
                    name,
                    namespace,
                    labels={
                        "app.kubernetes.io/name": "hearth-server",
                        "hearth.dev/deployment": deployment,
                    },
                ),
                "spec": {
                    "containers": [
                        {
                            "name": "server",
                            "image": "hearth-server",
                            "ports": [{"name": "http", "containerPort": port}],
                        }
                    ]
                },
            },
            {
                "phase": "Running",
                "podIP": ip,
                "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [{"name": "server", "restartCount": 0, "ready": True}],
            },
        )

    def served(self, namespace: str, model: str, ip: str, port: int) -> None:
        """A model on its own Deployment with one Ready replica at ``ip:port``."""
        self.model(namespace, model)
        self.deployment(namespace, f"{model}-d", model)
        self.deployed_model(namespace, f"{model}-dm", model, f"{model}-d")
        self.pod(namespace, f"{model}-d", f"{model}-d-0", ip, port)


@contextlib.contextmanager
def emulated_api() -> Iterator[KubeEmulatorServer]:
    with KubeEmulatorServer(crds=[ROOT / "crds"]) as api:
        yield api


@contextlib.contextmanager
def gateway(api: KubeEmulatorServer, tmp: Path, cpus: set[int] | None) -> Iterator[Target]:
    """hearth-gateway as its own process; yields where to reach it (no key yet).

    ``$BENCH_GATEWAY_PYTHONPATH`` goes first on its PYTHONPATH: a copy of another version
    of ``hearth_gateway`` there is measured instead (before/after comparisons)."""
    port = free_port()
    env = {**os.environ, "HEARTH_GATEWAY_LEDGER_PATH": str(tmp / f"ledger-{port}.sqlite3")}
    other = os.environ.get("BENCH_GATEWAY_PYTHONPATH")
    if other:
        env["PYTHONPATH"] = os.pathsep.join([other, env.get("PYTHONPATH", "")])
    log_file = (tmp / f"gateway-{port}.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hearth_gateway.cli",
            "--kubeconfig",
            str(api.kubeconfig_path),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    try:
        if cpus:
            pin(proc.pid, cpus)
        wait_healthy(f"http://127.0.0.1:{port}", proc, "hearth-gateway", 120)
        yield Target("gateway", "127.0.0.1", port, pid=proc.pid)
    finally:
        stop(proc)
        log_file.close()


def start_real_server(model_uri: str, port: int, max_seqs: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hearth_server.cli",
            "serve",
            model_uri,
            "--served-model-name",
            f"accounts/{ACCOUNT}/models/real",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--max-num-seqs",
            str(max_seqs),
            "--log-level",
            "warning",
        ],
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    wait_healthy(f"http://127.0.0.1:{port}", proc, "hearth-server", 300)
    return proc


# -- the measurements -----------------------------------------------------------------------
def ab(
    reps: int, direct: Callable[[], float], through: Callable[[], float]
) -> tuple[list[float], list[float]]:
    """Alternate the two runs (order swapped each repetition); both value lists."""
    d: list[float] = []
    g: list[float] = []
    for rep in range(reps):
        if rep % 2 == 0:
            d.append(direct())
            g.append(through())
        else:
            g.append(through())
            d.append(direct())
    return d, g


def med(values: list[float]) -> float:
    return float(statistics.median(values))


def ratio_of(num: list[float], den: list[float]) -> float:
    return med([n / d for n, d in zip(num, den, strict=True)])


def stream_body(model: str, tokens: int, token_ms: float = 0.0) -> Obj:
    body: Obj = {
        "model": model,
        "messages": PROMPT,
        "max_tokens": tokens,
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": 0,
        "ignore_eos": True,
    }
    if token_ms:
        body["stub_token_ms"] = token_ms
    return body


def throughput(
    direct: Target, through: Target, body: Obj, concurrency: int, streams: int, reps: int
) -> Obj:
    def run(target: Target) -> Callable[[], float]:
        def go() -> float:
            result = asyncio.run(load(target, body, concurrency, streams))
            return result.tok_s

        return go

    asyncio.run(load(through, body, concurrency, concurrency))  # warm both paths
    asyncio.run(load(direct, body, concurrency, concurrency))
    d, g = ab(reps, run(direct), run(through))
    return {
        "direct_tok_s": med(d),
        "gateway_tok_s": med(g),
        "ratio": ratio_of(g, d),
        "runs": {"direct": [round(x, 1) for x in d], "gateway": [round(x, 1) for x in g]},
    }


def added_latency(direct: Target, through: Target, model: str, requests: int, reps: int) -> Obj:
    """One request at a time: whole answers (16 tokens) and streams (time to first
    token, 16 events), p50/p99 per path; the difference is what the gateway adds."""
    whole: Obj = {"model": model, "messages": PROMPT, "max_tokens": 16}
    streamed = stream_body(model, 16)
    samples: dict[str, dict[str, list[float]]] = {
        kind: {"direct": [], "gateway": []} for kind in ("whole", "ttft")
    }

    def run(target: Target, key: str) -> Callable[[], float]:
        def go() -> float:
            a = asyncio.run(load(target, whole, 1, requests))
            s = asyncio.run(load(target, streamed, 1, requests))
            samples["whole"][key] += [x.total * 1000 for x in a.answers]
            samples["ttft"][key] += [x.first * 1000 for x in s.answers]
            return 0.0

        return go

    asyncio.run(load(through, whole, 1, 50))
    asyncio.run(load(through, streamed, 1, 50))
    ab(reps, run(direct, "direct"), run(through, "gateway"))
    out: Obj = {}
    for kind, paths in samples.items():
        stats = {
            path: {"p50": quantile(v, 0.5), "p99": quantile(v, 0.99), "n": len(v)}
            for path, v in paths.items()
        }
        stats["added"] = {q: stats["gateway"][q] - stats["direct"][q] for q in ("p50", "p99")}
        out[kind] = stats
    return out


def one_core_rps(direct: Target, through: Target, model: str, requests: int, reps: int) -> Obj:
    """64 concurrent whole answers from the unpaced stub, the gateway on one core."""
    body: Obj = {"model": model, "messages": PROMPT, "max_tokens": 16}
    pid = through.pid
    before = os.sched_getaffinity(pid)
    pin(pid, {0})
    cpu_per_request: list[float] = []

    def run_direct() -> float:
        return asyncio.run(load(direct, body, 64, requests)).rps

    def run_gateway() -> float:
        cpu = cpu_seconds(pid)
        result = asyncio.run(load(through, body, 64, requests))
        cpu_per_request.append((cpu_seconds(pid) - cpu) / max(len(result.answers), 1))
        return result.rps

    try:
        asyncio.run(load(through, body, 64, 256))
        d, g = ab(reps, run_direct, run_gateway)
    finally:
        os.sched_setaffinity(pid, before)
    per_request = med(cpu_per_request)
    return {
        "direct_rps": med(d),
        "gateway_rps": med(g),
        "gateway_cpu_ms_per_request": per_request * 1000,
        "gateway_rps_per_cpu_second": 1 / per_request,
        "runs": {"direct": [round(x) for x in d], "gateway": [round(x) for x in g]},
    }


def memory(tmp: Path, keys: int, deployed_models: int) -> Obj:
    """RSS of a gateway holding ``keys`` ApiKeys and ``deployed_models`` DeployedModels
    (and what they need: 100 accounts, a User per 10 keys, a Model and a Deployment with a
    pod per DeployedModel, ...) next to one holding a single account."""
    accounts = 100
    out: Obj = {}
    with emulated_api() as api:
        cluster = Cluster(api)
        cluster.account(ACCOUNT)
        cluster.user(ACCOUNT, "u")
        cluster.api_key(ACCOUNT, "k", "u")
        with gateway(api, tmp, None) as small:
            time.sleep(1.0)
            out["small_rss_mb"] = rss_mb(small.pid)
        log(f"loading {keys} ApiKeys and {deployed_models} DeployedModels into the emulated API")
        started = time.perf_counter()
        for a in range(accounts):
            namespace = f"acct{a}"
            cluster.account(namespace)
            for u in range(keys // accounts // 10):
                cluster.user(namespace, f"user{u}")
                for k in range(10):
                    cluster.api_key(namespace, f"key{u}-{k}", f"user{u}")
            for m in range(deployed_models // accounts):
                cluster.served(namespace, f"m{m}", f"127.0.{a}.{m + 1}", 8000)
        out["load_s"] = time.perf_counter() - started
        with gateway(api, tmp, None) as big:
            started = time.perf_counter()
            health = httpx.get(f"http://127.0.0.1:{big.port}/health", timeout=30).json()
            time.sleep(1.0)
            out["big_rss_mb"] = rss_mb(big.pid)
            out["cached"] = health["cached"]
    out["added_mb"] = out["big_rss_mb"] - out["small_rss_mb"]
    return out


# -- the run --------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    stub = sub.add_parser("stub", help="serve the stub upstream (used by the benchmark)")
    stub.add_argument("--port", type=int, required=True)
    parser.add_argument("--quick", action="store_true", help="fewer requests per run")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--skip-real", action="store_true", help="no hearth-server runs")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--model", help="model URI for hearth-server (default: tiny Llama)")
    parser.add_argument("--token-ms", type=float, default=10.0, help="stub pace per token")
    args = parser.parse_args()
    if args.command == "stub":
        serve_stub(args.port)
        return
    scale = 1 if args.quick else 3
    pin(os.getpid(), {1})
    res: Obj = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "cpus": os.cpu_count(),
        "load_before": os.getloadavg(),
        "reps": args.reps,
        "quick": args.quick,
        "stub_token_ms": args.token_ms,
        "gateway_pythonpath": os.environ.get("BENCH_GATEWAY_PYTHONPATH"),
    }
    with (
        tempfile.TemporaryDirectory() as tmp_dir,
        emulated_api() as api,
        stub_upstream() as (
            stub_port,
            _,
        ),
    ):
        tmp = Path(tmp_dir)
        cluster = Cluster(api)
        cluster.account(ACCOUNT)
        cluster.user(ACCOUNT, "u")
        key = cluster.api_key(ACCOUNT, "k", "u")
        cluster.served(ACCOUNT, "stub", "127.0.0.1", stub_port)
        stub_model = f"accounts/{ACCOUNT}/models/stub"
        auth = b"authorization: Bearer %s\r\n" % key.encode()
        real: subprocess.Popen[bytes] | None = None
        real_port = free_port()
        if not args.skip_real:
            uri = args.model
            if uri is None:
                from hearth_server.models.tiny import build_tiny_model_dir

                uri = str(build_tiny_model_dir(tmp / "tiny"))
            log(f"starting hearth-server on {uri}")
            real = start_real_server(uri, real_port, 64)
            cluster.served(ACCOUNT, "real", "127.0.0.1", real_port)
        try:
            with gateway(api, tmp, {0}) as through:
                through.headers = auth
                res["gateway_start_rss_mb"] = rss_mb(through.pid)
                stub_direct = Target("stub direct", "127.0.0.1", stub_port)
                log("added latency, one request at a time, stub")
                res["latency"] = added_latency(
                    stub_direct, through, stub_model, 100 * scale, args.reps
                )
                for concurrency in (16, 64):
                    log(f"stream throughput, {concurrency} streams, stub at {args.token_ms} ms")
                    res[f"stub_streams_{concurrency}"] = throughput(
                        stub_direct,
                        through,
                        stream_body(stub_model, 64, args.token_ms),
                        concurrency,
                        concurrency * 2 * scale,
                        args.reps,
                    )
                log("requests per second, gateway on one core, unpaced stub")
                res["one_core"] = one_core_rps(
                    stub_direct, through, stub_model, 1000 * scale, args.reps
                )
                if real is not None:
                    real_direct = Target("hearth-server direct", "127.0.0.1", real_port)
                    real_model = f"accounts/{ACCOUNT}/models/real"
                    pin(through.pid, {0, 1})
                    for concurrency in (16, 64):
                        log(f"stream throughput, {concurrency} streams, hearth-server")
                        res[f"real_streams_{concurrency}"] = throughput(
                            real_direct,
                            through,
                            stream_body(real_model, 32),
                            concurrency,
                            concurrency * scale,
                            args.reps,
                        )
                res["gateway_end_rss_mb"] = rss_mb(through.pid)
        finally:
            if real is not None:
                stop(real)
        if not args.skip_memory:
            res["memory"] = memory(tmp, 10_000, 1_000)
    res["load_after"] = os.getloadavg()
    report(res)
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"bench_gateway_{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(res, indent=2))
    log(f"wrote {out}")


def report(res: Obj) -> None:
    print(
        f"\nhearth-gateway overhead, {res['date']}, {res['cpus']} CPUs, load average "
        f"{res['load_before'][0]:.1f} before / {res['load_after'][0]:.1f} after, "
        f"median of {res['reps']} A/B repetitions"
    )
    print(f"{'measurement':<44} {'direct':>10} {'gateway':>10} {'ratio':>7}  target")
    rows: list[tuple[str, Obj, str]] = []
    for upstream, label in (("stub", f"stub {res['stub_token_ms']:g} ms/token"), ("real", "")):
        for n in (16, 64):
            found = res.get(f"{upstream}_streams_{n}")
            if found:
                name = f"tok/s, {n} streams, " + (label or "hearth-server")
                rows.append((name, found, ">= 0.95"))
    for name, found, target in rows:
        print(
            f"{name:<44} {found['direct_tok_s']:>10.0f} {found['gateway_tok_s']:>10.0f} "
            f"{found['ratio']:>7.3f}  {target}"
        )
    core = res["one_core"]
    print(
        f"{'req/s, 64 concurrent, gateway on 1 core':<44} {core['direct_rps']:>10.0f} "
        f"{core['gateway_rps']:>10.0f} {core['gateway_rps'] / core['direct_rps']:>7.3f}"
    )
    print(
        f"  gateway CPU per request {core['gateway_cpu_ms_per_request']:.2f} ms "
        f"= {core['gateway_rps_per_cpu_second']:.0f} requests per CPU-second"
    )
    for kind, label in (("whole", "whole answer"), ("ttft", "stream, first token")):
        lat = res["latency"][kind]
        print(
            f"latency, {label:<20} p50 {lat['direct']['p50']:.2f} -> {lat['gateway']['p50']:.2f}"
            f" ms (+{lat['added']['p50']:.2f}), p99 {lat['direct']['p99']:.2f} -> "
            f"{lat['gateway']['p99']:.2f} ms (+{lat['added']['p99']:.2f})   target: +p50 <= 2 ms"
        )
    mem = res.get("memory")
    if mem:
        print(
            f"RSS: {mem['small_rss_mb']:.0f} MB with one account; {mem['big_rss_mb']:.0f} MB "
            f"with {mem['cached']} (+{mem['added_mb']:.0f} MB)"
        )


if __name__ == "__main__":
    main()
