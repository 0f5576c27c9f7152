"""Registry of served adapter names plus the CPU-side LRU cache of their weights."""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hearth_server.engine.lora import LoRAWeights

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AdapterInfo:
    name: str
    uri: str
    path: Path
    rank: int
    loaded_at: float


class AdapterStore:
    """Thread-safe: written by HTTP handlers, read by the engine thread.

    ``registry`` lists every served adapter; ``cpu`` holds the weights of at most
    ``max_cpu_loras`` of them, reloading evicted ones from disk on demand.
    """

    def __init__(self, max_cpu: int, loader: Callable[[str, Path], LoRAWeights]) -> None:
        self.max_cpu = max_cpu
        self._loader = loader
        self._lock = threading.Lock()
        self.registry: dict[str, AdapterInfo] = {}
        self._cpu: OrderedDict[str, LoRAWeights] = OrderedDict()

    def add(self, info: AdapterInfo, weights: LoRAWeights) -> None:
        with self._lock:
            self.registry[info.name] = info
            self._cache(weights)

    def remove(self, name: str) -> bool:
        with self._lock:
            self._cpu.pop(name, None)
            return self.registry.pop(name, None) is not None

    def info(self, name: str) -> AdapterInfo | None:
        with self._lock:
            return self.registry.get(name)

    def all(self) -> list[AdapterInfo]:
        with self._lock:
            return list(self.registry.values())

    def weights(self, name: str) -> LoRAWeights | None:
        """Weights of a served adapter (None if it is not served any more)."""
        with self._lock:
            info = self.registry.get(name)
            if info is None:
                return None
            hit = self._cpu.get(name)
            if hit is not None:
                self._cpu.move_to_end(name)
                return hit
        start = time.monotonic()
        loaded = self._loader(name, info.path)  # evicted earlier: read it back from disk
        log.info("reloaded adapter %s from %s in %.2fs", name, info.path, time.monotonic() - start)
        with self._lock:
            if name not in self.registry:
                return None
            self._cache(loaded)
        return loaded

    def _cache(self, weights: LoRAWeights) -> None:
        self._cpu[weights.name] = weights
        self._cpu.move_to_end(weights.name)
        while len(self._cpu) > self.max_cpu:
            evicted, _ = self._cpu.popitem(last=False)
            log.info("adapter %s evicted from the CPU cache", evicted)

    @property
    def cpu_names(self) -> list[str]:
        with self._lock:
            return list(self._cpu)
