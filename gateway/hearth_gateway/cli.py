"""``hearth-gateway``: serve the inference API of a Hearth installation."""

from __future__ import annotations

import argparse
import logging
import os

import uvicorn

from .app import create_app
from .config import GatewayConfig

log = logging.getLogger("hearth_gateway")

LEDGER_URL_ENV = "HEARTH_GATEWAY_LEDGER_URL"
REDIS_URL_ENV = "HEARTH_GATEWAY_REDIS_URL"
PLATFORM_ACCOUNT_ENV = "HEARTH_PLATFORM_ACCOUNT"
UPLOAD_SECRET_ENV = "HEARTH_GATEWAY_UPLOAD_SECRET"


def positive(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise argparse.ArgumentTypeError(f"must be a number of seconds above 0, got {value!r}")
    return number


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hearth-gateway", description=__doc__)
    p.add_argument("--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")
    p.add_argument("--port", type=int, default=8080, help="port to listen on (default 8080)")
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--kubeconfig",
        help="kubeconfig file; default: the in-cluster service account, else ~/.kube/config",
    )
    where.add_argument(
        "--in-cluster",
        action="store_true",
        help="use only the pod's service account (fail outside a cluster)",
    )
    p.add_argument(
        "--platform-account",
        default=os.environ.get(PLATFORM_ACCOUNT_ENV, "hearth"),
        help=f"account whose serverless models every account may call "
        f"(${PLATFORM_ACCOUNT_ENV}, default hearth)",
    )
    p.add_argument(
        "--ledger-url",
        default=os.environ.get(LEDGER_URL_ENV),
        help=f"usage ledger database, e.g. postgresql://... (${LEDGER_URL_ENV}); "
        "default: SQLite at $HEARTH_GATEWAY_LEDGER_PATH",
    )
    p.add_argument(
        "--redis-url",
        default=os.environ.get(REDIS_URL_ENV),
        help=f"Redis for rate limits shared by several gateways (${REDIS_URL_ENV}); "
        "default: in memory",
    )
    p.add_argument(
        "--scale-from-zero-timeout",
        type=positive,
        default=300.0,
        help="seconds a request waits for a deployment to get a ready replica (default 300)",
    )
    p.add_argument(
        "--public-url",
        help="URL clients reach this gateway at, for upload and download URLs (default: from "
        "each request's Host and X-Forwarded-Proto)",
    )
    p.add_argument(
        "--upload-dir",
        help="where dataset and model uploads are written and downloads read: the accounts' "
        "artifact storage as mounted here ({account} is replaced by the account); default: "
        "uploads disabled",
    )
    p.add_argument(
        "--upload-max-bytes",
        type=int,
        default=1024**3,
        help="largest file one upload URL accepts (default 1 GiB)",
    )
    p.add_argument(
        "--control-requests-per-minute",
        type=int,
        default=0,
        help="control-plane requests per account and minute, 429 above (default 0: no limit)",
    )
    p.add_argument("--ssl-certfile", help="serve HTTPS with this certificate (PEM)")
    p.add_argument("--ssl-keyfile", help="the certificate's private key (PEM)")
    p.add_argument("--log-level", default="INFO")
    return p


def config_of(args: argparse.Namespace) -> GatewayConfig:
    return GatewayConfig(
        platform_account=args.platform_account,
        kubeconfig=args.kubeconfig,
        in_cluster=True if args.in_cluster else (False if args.kubeconfig else None),
        ledger_url=args.ledger_url or None,
        redis_url=args.redis_url or None,
        scale_from_zero_timeout=args.scale_from_zero_timeout,
        public_url=args.public_url or None,
        upload_dir=args.upload_dir or None,
        upload_secret=os.environ.get(UPLOAD_SECRET_ENV) or None,
        upload_max_bytes=args.upload_max_bytes,
        control_requests_per_minute=args.control_requests_per_minute,
    )


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    config = config_of(args)
    log.info("hearth-gateway listening on %s:%d", args.host, args.port)
    uvicorn.run(
        create_app(config),
        host=args.host,
        port=args.port,
        log_level=args.log_level.lower(),
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=30,
        ssl_certfile=args.ssl_certfile,
        ssl_keyfile=args.ssl_keyfile,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
