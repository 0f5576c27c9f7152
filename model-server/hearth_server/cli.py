"""``hearth-server serve MODEL [...]`` (flag names follow ``vllm serve``)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import TYPE_CHECKING

from hearth_server.config import API_KEY_ENV, DEFAULT_MAX_REQUEST_BYTES, ServerSettings
from hearth_server.models.loading import DTYPES, PRECISIONS, plan_precision

if TYPE_CHECKING:
    from hearth_server.engine.engine import Engine

# uvicorn's exit status when the server could not start (e.g. the port is taken).
STARTUP_FAILURE = 3


def _lora(value: str) -> tuple[str, str]:
    name, sep, uri = value.partition("=")
    if not sep or not name or not uri:
        raise argparse.ArgumentTypeError(f"expected NAME=URI, got {value!r}")
    return name, uri


def _positive(value: str) -> int:
    n = int(value)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {n}")
    return n


def _non_negative_int(value: str) -> int:
    n = int(value)
    if n < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {n}")
    return n


def _non_negative(value: str) -> float:
    seconds = float(value)
    if not seconds >= 0:  # also refuses NaN
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return seconds


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hearth-server", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve a model over OpenAI and Anthropic APIs")
    serve.add_argument(
        "model",
        help="local dir, file://, pvc://claim/path, hf://org/repo[@rev] "
        "or builtin://smollm2-135m-instruct",
    )
    serve.add_argument("--served-model-name", help="name clients use (default: MODEL)")
    serve.add_argument(
        "--lora",
        "--lora-modules",
        dest="lora",
        action="append",
        type=_lora,
        default=[],
        metavar="NAME=URI",
        help="adapter to load at startup",
    )
    serve.add_argument(
        "--max-loras", type=_positive, default=4, help="adapters active in one batch (slots)"
    )
    serve.add_argument(
        "--max-cpu-loras", type=_positive, default=8, help="adapters kept in the CPU cache"
    )
    serve.add_argument("--max-lora-rank", type=_positive, default=16)
    serve.add_argument(
        "--max-num-seqs", type=_positive, default=16, help="sequences decoded together"
    )
    serve.add_argument(
        "--max-model-len",
        type=_positive,
        default=None,
        help="context length (default: model's, capped at 4096)",
    )
    serve.add_argument(
        "--max-num-batched-tokens",
        type=_positive,
        default=256,
        help="tokens per engine step (prefill chunk size)",
    )
    serve.add_argument(
        "--kv-cache-tokens",
        type=_positive,
        default=65536,
        help="KV-cache budget in tokens; requests wait beyond it",
    )
    serve.add_argument(
        "--prefix-cache-tokens",
        type=_non_negative_int,
        default=8192,
        help="prompt tokens whose KV is kept for requests that share a prefix (0: off)",
    )
    serve.add_argument(
        "--max-waiting", type=_positive, default=256, help="queued requests before answering 503"
    )
    serve.add_argument(
        "--dtype",
        choices=DTYPES,
        default="auto",
        help="float dtype of the weights (auto: float32 on cpu, bfloat16 on cuda); "
        "--precision wins, and the two may not disagree",
    )
    serve.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="serving precision: auto (as --dtype), fp32, fp16, bf16, int8 (weight-only "
        "int8 linears with per-channel scales) or int4 (weight-only, a scale and offset "
        "per 32 inputs, as llama.cpp's Q4_1); int8 and int4 keep LoRA in float, cpu only",
    )
    serve.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    serve.add_argument("--host", default=os.environ.get("POD_IP", "0.0.0.0"))
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--log-level", default="info")
    serve.add_argument(
        "--api-key",
        default=os.environ.get(API_KEY_ENV) or None,
        help="token required on every route but /health and /metrics, as "
        f"'Authorization: Bearer <key>' or 'x-api-key: <key>' (default: ${API_KEY_ENV}; "
        "prefer the variable: a flag shows in the process list)",
    )
    serve.add_argument(
        "--max-request-bytes",
        type=_positive,
        default=DEFAULT_MAX_REQUEST_BYTES,
        help="larger request bodies get a 413",
    )
    serve.add_argument(
        "--adapter-root",
        dest="adapter_roots",
        action="append",
        default=[],
        metavar="DIR",
        help="directory /v1/load_lora_adapter may read adapters from, besides the model "
        "cache, the PVC mount root and the base model's directory (repeatable)",
    )
    serve.add_argument(
        "--engine-failure-exit-delay",
        type=_non_negative,
        default=2.0,
        metavar="SECONDS",
        help="after the engine dies, exit with status 1 this long after failing the "
        "requests in flight, so that Kubernetes restarts the server",
    )
    serve.add_argument(
        "--threads",
        type=_positive,
        default=None,
        help="CPU threads of the engine's kernels (default: the CPUs this process may use: "
        "its affinity, capped by its cgroup's CPU quota, e.g. a pod's CPU limit)",
    )
    serve.add_argument(
        "--engine-thread",
        dest="engine_process",
        action="store_false",
        help="run the engine as a thread of the HTTP server's process instead of in its "
        "own process (slower under concurrent load: the two then share one GIL)",
    )
    return parser


def settings_from_args(args: argparse.Namespace) -> ServerSettings:
    return ServerSettings(
        model=args.model,
        served_model_name=args.served_model_name,
        loras=list(args.lora),
        max_loras=args.max_loras,
        max_cpu_loras=args.max_cpu_loras,
        max_lora_rank=args.max_lora_rank,
        max_num_seqs=args.max_num_seqs,
        max_model_len=args.max_model_len,
        max_num_batched_tokens=args.max_num_batched_tokens,
        kv_cache_tokens=args.kv_cache_tokens,
        prefix_cache_tokens=args.prefix_cache_tokens,
        max_waiting=args.max_waiting,
        dtype=args.dtype,
        precision=args.precision,
        device=args.device,
        host=args.host,
        port=args.port,
        api_key=args.api_key,
        max_request_bytes=args.max_request_bytes,
        adapter_roots=list(args.adapter_roots),
        engine_failure_exit_delay=args.engine_failure_exit_delay,
        engine_process=args.engine_process,
        threads=args.threads,
    )


def precision_problem(settings: ServerSettings) -> str | None:
    """Why ``--precision``/``--dtype`` cannot be honoured on the device; None if they can."""
    from hearth_server.server import resolve_device

    try:
        plan_precision(settings.precision, settings.dtype, resolve_device(settings.device))
    except ValueError as exc:
        return str(exc)
    return None


def serve(settings: ServerSettings, log_level: str = "info", engine: Engine | None = None) -> int:
    """Run the HTTP server until it stops; returns the process exit status: 0 after a
    normal shutdown, 1 after an engine failure, 3 if it could not start. ``engine``: a
    ready engine to serve instead of loading ``settings.model`` (tests)."""
    import uvicorn

    from hearth_server.api.app import build_app

    server: uvicorn.Server | None = None

    def stop() -> None:
        if server is not None:
            server.should_exit = True

    app = build_app(settings, engine=engine, on_fatal=stop)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=log_level.lower(),
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    server.run()
    if not server.started:
        return STARTUP_FAILURE
    return int(app.state.hearth.exit_code)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    settings = settings_from_args(args)
    problem = precision_problem(settings)
    if problem:
        build_parser().error(problem)  # exits 2 with the reason, before any loading
    logging.getLogger("hearth_server").info(
        "hearth-server serving %s as %r on %s:%d (API key %s)",
        settings.model,
        settings.model_name,
        settings.host,
        settings.port,
        "required" if settings.api_key else "not set: every route is open",
    )
    return serve(settings, args.log_level)


if __name__ == "__main__":
    sys.exit(main())
