"""What every route needs: settings, engine, tokenizer, metrics, adapter locks."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from hearth_server.api.metrics import Metrics
from hearth_server.config import ServerSettings
from hearth_server.engine.engine import Engine


@dataclass
class ServerState:
    settings: ServerSettings
    metrics: Metrics
    engine: Engine | None = None
    model_root: str = ""
    startup_error: str | None = None
    started: bool = False  # model and startup adapters loaded
    adapter_locks: defaultdict[str, asyncio.Lock] = field(
        default_factory=lambda: defaultdict(asyncio.Lock)
    )

    @property
    def ready(self) -> bool:
        return self.started and self.engine is not None and self.engine.alive

    @property
    def tokenizer(self) -> Any:
        assert self.engine is not None
        return self.engine.tokenizer

    @property
    def max_model_len(self) -> int:
        assert self.engine is not None
        return self.engine.config.max_model_len
