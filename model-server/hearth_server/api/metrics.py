"""Prometheus metrics with vLLM's names under a ``hearth:`` prefix."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from hearth_server.api.state import ServerState
    from hearth_server.engine.prefix_cache import PrefixCacheReadings

_TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_TPOT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.5)


class Metrics:
    """Engine observer (called from the engine thread; prometheus_client is thread-safe)."""

    def __init__(self, model_name: str) -> None:
        self.registry = CollectorRegistry()
        self.model_name = model_name
        labels = ["model_name"]
        self.ttft = Histogram(
            "hearth:time_to_first_token_seconds",
            "Time to first token.",
            labels,
            buckets=_TTFT_BUCKETS,
            registry=self.registry,
        )
        self.tpot = Histogram(
            "hearth:time_per_output_token_seconds",
            "Time between output tokens.",
            labels,
            buckets=_TPOT_BUCKETS,
            registry=self.registry,
        )
        self.prompt_tokens = Counter(
            "hearth:prompt_tokens", "Prefilled prompt tokens.", labels, registry=self.registry
        )
        self.generation_tokens = Counter(
            "hearth:generation_tokens", "Generated tokens.", labels, registry=self.registry
        )
        self.success = Counter(
            "hearth:request_success",
            "Finished requests by reason.",
            [*labels, "finished_reason"],
            registry=self.registry,
        )

    def on_first_token(self, seconds: float, adapter: str | None) -> None:
        self.ttft.labels(self.model_name).observe(seconds)

    def on_token_latency(self, seconds: float) -> None:
        self.tpot.labels(self.model_name).observe(seconds)

    def on_finished(self, prompt_tokens: int, generation_tokens: int, reason: str) -> None:
        self.prompt_tokens.labels(self.model_name).inc(prompt_tokens)
        self.generation_tokens.labels(self.model_name).inc(generation_tokens)
        self.success.labels(self.model_name, reason).inc()

    def add_engine_gauges(
        self, read: Callable[[], dict[str, float]], adapters: Callable[[], list[str]]
    ) -> None:
        self.registry.register(_EngineCollector(self.model_name, read, adapters))

    def add_prefix_cache(self, read: Callable[[], PrefixCacheReadings | None]) -> None:
        self.registry.register(_PrefixCacheCollector(self.model_name, read))


class _EngineCollector(Collector):
    """Gauges read at scrape time, so the engine loop does no metric work for them."""

    def __init__(
        self, model: str, read: Callable[[], dict[str, float]], adapters: Callable[[], list[str]]
    ) -> None:
        self.model, self.read, self.adapters = model, read, adapters

    def collect(self) -> Iterator[Metric]:
        for name, value in self.read().items():
            g = GaugeMetricFamily(f"hearth:{name}", name.replace("_", " "), labels=["model_name"])
            g.add_metric([self.model], value)
            yield g
        info = GaugeMetricFamily(
            "hearth:lora_adapter_info",
            "1 for every served LoRA adapter.",
            labels=["model_name", "lora_name"],
        )
        for name in self.adapters():
            info.add_metric([self.model, name], 1.0)
        yield info


class _PrefixCacheCollector(Collector):
    """Prefix-cache counters (in prompt tokens, as vLLM's) and gauges, read at scrape
    time from plain integers the engine keeps."""

    def __init__(self, model: str, read: Callable[[], PrefixCacheReadings | None]) -> None:
        self.model, self.read = model, read

    def collect(self) -> Iterator[Metric]:
        cache, labels = self.read(), ["model_name"]
        if cache is None:  # the engine has no prefix cache
            return
        queries, hits = cache.queried_tokens, cache.hit_tokens
        counters = (
            ("prefix_cache_queries", "Prompt tokens looked up in the prefix cache.", queries),
            ("prefix_cache_hits", "Prompt tokens served from the prefix cache.", hits),
        )
        for name, doc, value in counters:
            counter = CounterMetricFamily(f"hearth:{name}", doc, labels=labels)
            counter.add_metric([self.model], float(value))
            yield counter
        capacity = cache.capacity_tokens
        hit_rate = hits / queries if queries else 0.0
        usage = cache.num_tokens / capacity if capacity else 0.0
        gauges = (
            ("prefix_cache_hit_rate", "Share of prompt tokens served from the cache.", hit_rate),
            ("prefix_cache_usage_perc", "Share of --prefix-cache-tokens in use.", usage),
        )
        for name, doc, share in gauges:
            gauge = GaugeMetricFamily(f"hearth:{name}", doc, labels=labels)
            gauge.add_metric([self.model], share)
            yield gauge


router = APIRouter()


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    state: ServerState = request.app.state.hearth
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
