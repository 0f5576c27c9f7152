"""What every reconciler needs: the API client, settings, a clock, locks, metrics."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

from .conditions import format_time
from .constants import MANAGED_BY
from .kube import Kube, Obj, _contains
from .settings import Settings

log = logging.getLogger("hearth_operator")


def utcnow() -> datetime:
    return datetime.now(UTC)


class KeyedLocks:
    """One lock per object, so a watch event and a timer never reconcile it at once."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[tuple[str, ...], threading.Lock] = {}

    @contextmanager
    def hold(self, *key: str) -> Iterator[None]:
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            yield


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.reconciles = Counter(
            "hearth_operator_reconciles",
            "Reconciles by kind and result (ok, error).",
            ["kind", "result"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "hearth_operator_reconcile_duration_seconds",
            "Time one reconcile took, by kind.",
            ["kind"],
            buckets=(
                0.005,
                0.01,
                0.02,
                0.05,
                0.075,
                0.1,
                0.15,
                0.2,
                0.3,
                0.5,
                0.75,
                1,
                2,
                5,
                10,
                30,
            ),
            registry=self.registry,
        )
        self.adapter_loads = Counter(
            "hearth_operator_adapter_loads",
            "load_lora_adapter calls to model servers, by result.",
            ["result"],
            registry=self.registry,
        )


@dataclass
class Context:
    kube: Kube
    settings: Settings
    clock: Callable[[], datetime] = utcnow
    locks: KeyedLocks = field(default_factory=KeyedLocks)
    metrics: Metrics = field(default_factory=Metrics)

    @contextmanager
    def reconciling(self, kind: str, *key: str) -> Iterator[None]:
        """Serialise reconciles of one object and record their duration and outcome."""
        started = time.perf_counter()
        result = "error"
        try:
            with self.locks.hold(kind, *key):
                yield
            result = "ok"
        finally:
            self.metrics.reconciles.labels(kind, result).inc()
            self.metrics.duration.labels(kind).observe(time.perf_counter() - started)

    def write_status(self, obj: Obj, status: dict[str, Any]) -> bool:
        """Patch the status subresource only if it would change (no hot loops)."""
        if _contains(obj.get("status") or {}, status):
            return False
        metadata = obj["metadata"]
        self.kube.patch_status(obj["kind"], metadata["name"], metadata.get("namespace"), status)
        obj["status"] = {**(obj.get("status") or {}), **status}
        return True

    def event(self, obj: Obj, type_: str, reason: str, message: str) -> None:
        """A Kubernetes Event on ``obj`` for a transition a user cares about."""
        metadata = obj["metadata"]
        namespace = metadata.get("namespace") or self.settings.namespace
        now = format_time(self.clock())
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{metadata['name']}.", "namespace": namespace},
            "involvedObject": {
                "apiVersion": obj.get("apiVersion"),
                "kind": obj.get("kind"),
                "name": metadata["name"],
                "namespace": metadata.get("namespace"),
                "uid": metadata.get("uid"),
            },
            "reason": reason,
            "message": message[:1024],
            "type": type_,
            "source": {"component": MANAGED_BY},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            self.kube.create(event)
        except Exception:  # events are best effort; never fail a reconcile over one
            log.warning("could not post event %s on %s", reason, metadata["name"], exc_info=True)
