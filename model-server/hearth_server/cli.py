"""``hearth-server serve MODEL [...]`` (flag names follow ``vllm serve``)."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from hearth_server.config import ServerSettings
from hearth_server.models.loading import DTYPES


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
        "--max-waiting", type=_positive, default=256, help="queued requests before answering 503"
    )
    serve.add_argument("--dtype", choices=DTYPES, default="auto")
    serve.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    serve.add_argument("--host", default=os.environ.get("POD_IP", "0.0.0.0"))
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--log-level", default="info")
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
        max_waiting=args.max_waiting,
        dtype=args.dtype,
        device=args.device,
        host=args.host,
        port=args.port,
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    settings = settings_from_args(args)
    import uvicorn

    from hearth_server.api.app import build_app

    logging.getLogger("hearth_server").info(
        "hearth-server serving %s as %r on %s:%d",
        settings.model,
        settings.model_name,
        settings.host,
        settings.port,
    )
    uvicorn.run(
        build_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=args.log_level.lower(),
        timeout_graceful_shutdown=5,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
