"""A stand-in for hearth-server in the operator's component tests (a test double).

It takes hearth-server's command line, listens on POD_IP, answers /health and the two
adapter endpoints, and appends every adapter call to ``$STUB_RECORD_DIR/<pod ip>.jsonl`` so
tests can see what the operator asked of each replica. It loads no model, so component
tests stay fast; the end-to-end test runs the real server. A model URI containing
``crash`` makes it exit at start, and an adapter path containing ``broken`` is refused,
to drive the operator's failure paths.

Like hearth-server, it requires ``$HEARTH_SERVER_API_KEY`` (or, run as a Deployment's vLLM
command, ``$VLLM_API_KEY``) when set, as a bearer token on every route but /health, and
records a refused call as ``"call": "refused"``.
``POST /test/kill-engine`` makes /health answer 503 for good while the process stays up
(as a server whose engine died would, if it did not exit), for the liveness probe to find.

``GET /metrics`` (no token, like hearth-server) exports hearth-server's load gauges and
counters with the values in ``$STUB_RECORD_DIR/load.json`` (``running``, ``waiting``,
``kv_cache_usage``, ``generation_tokens``, ``requests_finished``; zero when absent), read
at every scrape, so a test sets the load the autoscaler sees on every replica at once;
``{"fail": true}`` there makes /metrics answer 500.
"""

from __future__ import annotations

import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

loaded: set[str] = set()
#: hearth-server's metric names and the load.json keys that set them.
METRICS = (
    ("hearth:num_requests_running", "running"),
    ("hearth:num_requests_waiting", "waiting"),
    ("hearth:kv_cache_usage_perc", "kv_cache_usage"),
    ("hearth:generation_tokens_total", "generation_tokens"),
    ("hearth:request_success_total", "requests_finished"),
)
engine_dead = False


def record(entry: dict[str, str]) -> None:
    directory = Path(os.environ["STUB_RECORD_DIR"])
    with (directory / f"{os.environ['POD_IP']}.jsonl").open("a") as handle:
        handle.write(json.dumps(entry) + "\n")


class Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def reply(self, status: int, body: dict[str, object]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def authorized(self) -> bool:
        # Standing in for vLLM (servingEngine VLLM), it gets the token as vLLM does.
        key = os.environ.get("HEARTH_SERVER_API_KEY") or os.environ.get("VLLM_API_KEY")
        return not key or self.headers.get("Authorization") == f"Bearer {key}"

    def metrics(self) -> None:
        path = Path(os.environ["STUB_RECORD_DIR"]) / "load.json"
        load = json.loads(path.read_text()) if path.exists() else {}
        if load.get("fail"):  # a replica whose metrics endpoint fails
            self.reply(500, {"error": {"message": "metrics failed (test)"}})
            return
        lines = []
        for name, key in METRICS:
            kind = "counter" if name.endswith("_total") else "gauge"
            family = name.removesuffix("_total")
            lines += [f"# TYPE {family} {kind}", f'{name}{{model_name="stub"}} {load.get(key, 0)}']
        data = ("\n".join(lines) + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/metrics":
            self.metrics()
        elif self.path == "/health":
            if engine_dead:
                self.reply(503, {"error": {"message": "engine failed: killed by the test"}})
            else:
                self.reply(200, {"status": "ok"})
        elif not self.authorized():
            self.reply(401, {"error": {"message": "invalid API key"}})
        elif self.path == "/v1/models":
            self.reply(200, {"data": [{"id": name} for name in sorted(loaded)]})
        else:
            self.reply(404, {"error": {"message": "not found"}})

    def do_POST(self) -> None:
        global engine_dead
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
        if not self.authorized():
            record({"call": "refused", "path": self.path})
            self.reply(401, {"error": {"message": "invalid API key"}})
        elif self.path == "/test/kill-engine":
            engine_dead = True
            self.reply(200, {"status": "engine dead"})
        elif self.path == "/v1/load_lora_adapter":
            record({"call": "load", **body})
            if "broken" in body.get("lora_path", ""):
                self.reply(400, {"error": {"message": "adapter_config.json is missing"}})
                return
            loaded.add(body["lora_name"])
            self.reply(200, {"status": "loaded"})
        elif self.path == "/v1/unload_lora_adapter":
            record({"call": "unload", **body})
            if body["lora_name"] not in loaded:
                self.reply(404, {"error": {"message": "not loaded"}})
                return
            loaded.discard(body["lora_name"])
            self.reply(200, {"status": "unloaded"})
        else:
            self.reply(404, {"error": {"message": "not found"}})


def main(argv: list[str]) -> int:
    model = argv[1]
    port = int(argv[argv.index("--port") + 1]) if "--port" in argv else 8000
    if "crash" in model:
        print(f"cannot load {model}: no such model", file=sys.stderr)
        return 1
    server = ThreadingHTTPServer((os.environ["POD_IP"], port), Handler)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
