"""Prometheus metrics of the gateway, in a registry of its own (served on ``/metrics``).

``model`` labels are deployed-model names (``accounts/<a>/deployedModels/<x>``) or ``-``
when the request never resolved to one, so a client cannot grow the label set by sending
made-up names.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "hearth_gateway_requests",
            "Inference requests answered, by caller account, deployed model and status.",
            ["account", "model", "status"],
            registry=self.registry,
        )
        self.tokens = Counter(
            "hearth_gateway_tokens",
            "Tokens served, by caller account, deployed model and kind (prompt, completion).",
            ["account", "model", "kind"],
            registry=self.registry,
        )
        self.retries = Counter(
            "hearth_gateway_upstream_retries",
            "Requests retried on another replica before any byte reached the client.",
            registry=self.registry,
        )
        self.held = Gauge(
            "hearth_gateway_held_requests",
            "Requests waiting for a ready replica (scale from zero, adapter loading).",
            registry=self.registry,
        )
        self.scale_ups = Counter(
            "hearth_gateway_scale_from_zero",
            "Deployments asked to scale from zero by a request.",
            registry=self.registry,
        )
        self.latency = Histogram(
            "hearth_gateway_request_seconds",
            "Time from request to the last byte of the response.",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
            registry=self.registry,
        )
