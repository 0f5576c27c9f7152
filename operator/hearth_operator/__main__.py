"""``hearth-operator``: run the operator against the cluster in the kubeconfig or in-cluster."""

from __future__ import annotations

import argparse

from kubernetes import client, config
from prometheus_client import start_http_server

from .context import Context
from .kube import Kube
from .logs import configure_logging
from .runtime import run
from .settings import load_settings


def _api_client(kubeconfig: str | None) -> client.ApiClient:
    configuration = client.Configuration()
    if kubeconfig:
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig, client_configuration=configuration
        )
    else:
        try:
            config.load_incluster_config(  # type: ignore[no-untyped-call]
                client_configuration=configuration
            )
        except config.ConfigException:
            config.load_kube_config(  # type: ignore[no-untyped-call]
                client_configuration=configuration
            )
    # Reconciles run on kopf's worker threads; give each a pooled connection.
    configuration.connection_pool_maxsize = 32
    return client.ApiClient(configuration)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hearth-operator", description=__doc__)
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster, then ~/.kube)")
    parser.add_argument(
        "--liveness",
        default="http://0.0.0.0:8080/healthz",
        help="kopf liveness endpoint URL ('' to disable)",
    )
    parser.add_argument("--metrics-port", type=int, default=9090, help="0 disables /metrics")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    settings = load_settings()
    ctx = Context(kube=Kube(_api_client(args.kubeconfig)), settings=settings)
    if args.metrics_port:
        start_http_server(args.metrics_port, registry=ctx.metrics.registry)
    run(ctx, liveness_endpoint=args.liveness or None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
