"""What every route needs: settings, engine, tokenizer, metrics, adapter locks."""

from __future__ import annotations

import asyncio
import functools
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

from hearth_server.api.metrics import Metrics
from hearth_server.config import ServerSettings
from hearth_server.engine.handle import EngineHandle

P = ParamSpec("P")
T = TypeVar("T")


def _tokenizer_pool() -> ThreadPoolExecutor:
    # One thread: a fast tokenizer refuses concurrent calls that change its settings
    # ("Already borrowed"), and the GIL would serialise the work anyway.
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="hearth-tokenize")


@dataclass
class ServerState:
    settings: ServerSettings
    metrics: Metrics
    engine: EngineHandle | None = None
    model_root: str = ""
    startup_error: str | None = None
    started: bool = False  # model and startup adapters loaded
    exit_code: int = 0  # 1 once the engine failed: the process must be restarted
    adapter_locks: defaultdict[str, asyncio.Lock] = field(
        default_factory=lambda: defaultdict(asyncio.Lock)
    )
    tokenizer_pool: ThreadPoolExecutor = field(default_factory=_tokenizer_pool)

    @property
    def ready(self) -> bool:
        return self.started and self.engine is not None and self.engine.alive

    @property
    def engine_failure(self) -> str | None:
        """ "engine failed: <why>" once an attached engine has stopped; else None."""
        engine = self.engine
        if engine is None or engine.alive:
            return None
        return f"engine failed: {engine.failure or 'the engine thread stopped'}"

    @property
    def not_ready_reason(self) -> str:
        """Why requests get a 503 (only meaningful while ``ready`` is False)."""
        if self.startup_error:
            return self.startup_error
        failure = self.engine_failure
        if failure is not None:
            return failure
        if self.engine is None:
            return "model is loading"
        return "loading startup adapters"

    @property
    def tokenizer(self) -> Any:
        assert self.engine is not None
        return self.engine.tokenizer

    @property
    def max_model_len(self) -> int:
        assert self.engine is not None
        return self.engine.config.max_model_len

    async def off_loop(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run tokenizer work in its own thread, so a huge prompt never stalls the event
        loop (and with it /health and every stream)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self.tokenizer_pool, functools.partial(fn, *args, **kwargs)
        )
