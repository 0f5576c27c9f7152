"""Messages between the server process and the engine process (pickled over one pipe).

Server -> engine: commands. Engine -> server: ``Ready`` or ``StartFailed`` once, then one
``Outputs`` per engine-loop iteration that produced anything, ``Reply`` to the commands
that wait for an answer, and ``Dead`` if the engine loop crashed. Plain data only: no
tensors (torch would share their storage through file descriptors), no callables.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hearth_server.engine.engine import EngineConfig
from hearth_server.engine.params import SamplingParams, StepOutput
from hearth_server.engine.prefix_cache import PrefixCacheReadings

# -- server -> engine ------------------------------------------------------------------


@dataclass(frozen=True)
class Submit:
    id: int
    prompt_ids: list[int]
    params: SamplingParams
    adapter: str | None
    arrival: float  # time.monotonic() in the server process (one clock on Linux)


@dataclass(frozen=True)
class Abort:
    id: int


@dataclass(frozen=True)
class Embed:
    id: int
    inputs: list[list[int]]


@dataclass(frozen=True)
class CancelEmbed:
    id: int


@dataclass(frozen=True)
class AddAdapter:
    token: int
    name: str
    uri: str
    path: str


@dataclass(frozen=True)
class RemoveAdapter:
    token: int
    name: str


@dataclass(frozen=True)
class Shutdown:
    pass


# -- engine -> server ------------------------------------------------------------------


@dataclass(frozen=True)
class Ready:
    tokenizer: Any
    config: EngineConfig
    vocab_size: int
    hidden_size: int
    eos_ids: list[int]
    model_root: str
    gauges: dict[str, float]  # before any iteration: /metrics lists every gauge from the start
    prefix: PrefixCacheReadings | None


@dataclass(frozen=True)
class StartFailed:
    reason: str


# A StatsObserver call replayed in the server process: (method name, arguments).
StatsCall = tuple[str, tuple[Any, ...]]


@dataclass
class Outputs:
    outputs: list[tuple[int, StepOutput]] = field(default_factory=list)
    dequeued: list[int] = field(default_factory=list)  # left the waiting queue
    stats: list[StatsCall] = field(default_factory=list)
    # (job id, vectors as nested float lists or None, why it failed)
    embedded: list[tuple[int, Any, str | None]] = field(default_factory=list)
    gauges: dict[str, float] = field(default_factory=dict)
    prefix: PrefixCacheReadings | None = None

    def __bool__(self) -> bool:
        return bool(self.outputs or self.dequeued or self.stats or self.embedded)


@dataclass(frozen=True)
class Reply:
    token: int
    value: Any = None
    error: tuple[str, str] | None = None  # (exception type name, message)


@dataclass(frozen=True)
class Dead:
    failure: str
