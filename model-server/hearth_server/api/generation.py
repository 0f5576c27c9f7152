"""Bridge between async request handlers and the engine thread (shared by all dialects)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal

from fastapi import Request

from hearth_server.api.errors import ErrorResponse, bad_request, error
from hearth_server.api.state import ServerState
from hearth_server.engine.engine import EngineDead, EngineOverloaded, Sequence
from hearth_server.engine.handle import EngineHandle
from hearth_server.engine.params import ParamError, SamplingParams, StepOutput, TokenLogprob

Behavior = Literal["truncate", "error"]


class _Dispatcher:
    """Coalesces the engine thread's per-sequence outputs into one event-loop wake-up
    per engine step instead of one per sequence (each wake-up is a syscall and a
    context switch that competes with the model for the CPU)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._lock = threading.Lock()
        self._pending: list[tuple[asyncio.Queue[tuple[int, StepOutput]], int, StepOutput]] = []

    def put(
        self, queue: asyncio.Queue[tuple[int, StepOutput]], index: int, out: StepOutput
    ) -> None:
        with self._lock:
            self._pending.append((queue, index, out))
            first = len(self._pending) == 1
        if first:
            self.loop.call_soon_threadsafe(self._flush)

    def _flush(self) -> None:
        with self._lock:
            batch, self._pending = self._pending, []
        for queue, index, out in batch:
            queue.put_nowait((index, out))


_dispatchers: dict[asyncio.AbstractEventLoop, _Dispatcher] = {}


def _dispatcher() -> _Dispatcher:
    loop = asyncio.get_running_loop()
    found = _dispatchers.get(loop)
    if found is None:
        for old in [lp for lp in _dispatchers if lp.is_closed()]:
            del _dispatchers[old]
        found = _dispatchers[loop] = _Dispatcher(loop)
    return found


class Generation:
    """A group of engine sequences (one per prompt x n) whose outputs arrive on one queue."""

    def __init__(
        self,
        engine: EngineHandle,
        items: list[tuple[list[int], SamplingParams]],
        adapter: str | None,
    ) -> None:
        self.engine = engine
        self._dispatch = _dispatcher()
        self._queue: asyncio.Queue[tuple[int, StepOutput]] = asyncio.Queue()
        self.seqs = [
            Sequence(ids, params, functools.partial(self._emit, i), adapter=adapter)
            for i, (ids, params) in enumerate(items)
        ]
        self._open = set(range(len(self.seqs)))

    @property
    def cached_tokens(self) -> int:
        """Prompt tokens served from the prefix cache, counted like usage's prompt
        tokens: once per prompt (its choices share one list), the best choice's reuse."""
        best: dict[int, int] = {}
        for seq in self.seqs:
            best[id(seq.prompt_ids)] = max(best.get(id(seq.prompt_ids), 0), seq.reused)
        return sum(best.values())

    def start(self) -> ErrorResponse | None:
        """Submit every sequence; if one is refused, withdraw what was submitted."""
        for i, seq in enumerate(self.seqs):
            try:
                self.engine.submit(seq)
            except (EngineOverloaded, EngineDead, ParamError) as exc:
                for done in self.seqs[:i]:
                    self.engine.abort(done)
                if isinstance(exc, ParamError):
                    return bad_request(str(exc), exc.param)
                return error(503, str(exc))
        return None

    def _emit(self, index: int, out: StepOutput) -> None:
        self._dispatch.put(self._queue, index, out)

    async def stream(self) -> AsyncIterator[tuple[int, StepOutput]]:
        try:
            while self._open:
                index, out = await self._queue.get()
                if index not in self._open:
                    continue  # already finished (e.g. failed twice while the engine died)
                if out.finished:
                    self._open.discard(index)
                yield index, out
        finally:
            self.abort()

    def abort(self) -> None:
        for i in list(self._open):
            self.engine.abort(self.seqs[i])
        self._open.clear()

    async def collect(self, raw: Request | None) -> list[list[StepOutput]]:
        """Wait for every sequence; abort them if the client goes away meanwhile."""
        outs: list[list[StepOutput]] = [[] for _ in self.seqs]
        watcher = asyncio.create_task(_abort_on_disconnect(raw, self)) if raw else None
        try:
            async for index, out in self.stream():
                outs[index].append(out)
        finally:
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
        return outs


async def _abort_on_disconnect(raw: Request, gen: Generation) -> None:
    while True:
        await asyncio.sleep(0.25)
        if await raw.is_disconnected():
            gen.abort()
            return


def resolve_target(state: ServerState, model: str | None) -> str | ErrorResponse | None:
    """Map a request's ``model`` to None (base) or an adapter name; 404 when unknown."""
    if model is None or model in (state.settings.model_name, state.settings.model):
        return None
    assert state.engine is not None
    if state.engine.adapter_info(model) is not None:
        return model
    return error(404, f"The model `{model}` does not exist.", "model")


def fit_max_tokens(
    state: ServerState,
    prompt_len: int,
    max_tokens: int | None,
    behavior: Behavior,
    prompt_param: str,
) -> int | ErrorResponse:
    """Apply Fireworks' context_length_exceeded_behavior to a request's budget."""
    limit = state.max_model_len
    if prompt_len == 0:
        return bad_request("the prompt is empty", prompt_param)
    if prompt_len >= limit:
        return bad_request(
            f"the prompt is {prompt_len} tokens but this model's context is {limit} tokens "
            "(leaving no room for output)",
            prompt_param,
        )
    room = limit - prompt_len
    if max_tokens is None:
        return room
    if max_tokens > room:
        if behavior == "error":
            return bad_request(
                f"prompt ({prompt_len} tokens) + max_tokens ({max_tokens}) exceeds the "
                f"context length {limit}; lower max_tokens or use "
                "context_length_exceeded_behavior=truncate",
                "max_tokens",
            )
        return room
    return max_tokens


def check_params(state: ServerState, params: SamplingParams) -> ErrorResponse | None:
    """Range checks of every sampling field, token ids against the vocabulary included."""
    assert state.engine is not None
    try:
        params.validate()
        params.check_token_ids(state.engine.vocab_size)
    except ParamError as exc:
        return bad_request(str(exc), exc.param)
    return None


def check_fanout(state: ServerState, sequences: int, param: str, what: str) -> ErrorResponse | None:
    """A request fans out into one engine sequence per prompt and choice. More than the
    waiting queue holds could never be admitted together: refuse it as invalid (400)
    rather than as overload (503), which would invite a retry."""
    assert state.engine is not None
    limit = state.engine.config.max_waiting
    if sequences > limit:
        return bad_request(
            f"{what} make {sequences} sequences, more than this server accepts in one "
            f"request ({limit}, --max-waiting); split the request",
            param,
        )
    return None


def engine_error(out: StepOutput) -> ErrorResponse | None:
    if out.finish_reason == "error":
        status = 404 if out.error and "unloaded" in out.error else 500
        return error(status, out.error or "internal error")
    return None


def finish_reason(out: StepOutput) -> str | None:
    return out.finish_reason if out.finished else None


@dataclass
class Choice:
    """Everything one finished sequence produced (non-streaming responses)."""

    index: int
    text: str
    logprobs: list[TokenLogprob]
    finish_reason: str
    matched_stop: str | int | None
    completion_tokens: int
    prompt_logprobs: list[TokenLogprob | None] | None = None  # when the request asked


async def collect_choices(gen: Generation, raw: Request | None) -> list[Choice] | ErrorResponse:
    """Wait for every sequence of ``gen``; the first engine error fails the request."""
    outs = await gen.collect(raw)
    choices = []
    for index, steps in enumerate(outs):
        failed = next((e for e in map(engine_error, steps) if e is not None), None)
        if failed is not None:
            return failed
        last = steps[-1] if steps else StepOutput(finished=True, finish_reason="abort")
        choices.append(
            Choice(
                index=index,
                text="".join(s.text for s in steps),
                logprobs=[lp for s in steps for lp in s.logprobs],
                finish_reason=finish_reason(last) or "abort",
                matched_stop=last.matched_stop,
                completion_tokens=last.completion_tokens,
                prompt_logprobs=next(
                    (s.prompt_logprobs for s in steps if s.prompt_logprobs is not None), None
                ),
            )
        )
    return choices


@dataclass
class Delta:
    """What one sequence gained in one engine step (streaming responses)."""

    index: int
    text: str
    logprobs: list[TokenLogprob] = field(default_factory=list)
    finish_reason: str | None = None
    matched_stop: str | int | None = None
    completion_tokens: int = 0  # this sequence's so far
    total_completion_tokens: int = 0  # every sequence's so far
    prompt_logprobs: list[TokenLogprob | None] | None = None  # with the first token


async def stream_deltas(gen: Generation) -> AsyncIterator[Delta | ErrorResponse]:
    """The non-empty steps of ``gen``'s sequences as they come; an engine error is
    yielded once and ends the stream."""
    completion = [0] * len(gen.seqs)
    async for index, out in gen.stream():
        failed = engine_error(out)
        if failed is not None:
            yield failed
            return
        completion[index] = out.completion_tokens or completion[index]
        if not out.text and not out.finished and not out.logprobs:
            continue
        yield Delta(
            index=index,
            text=out.text,
            logprobs=out.logprobs,
            finish_reason=finish_reason(out),
            matched_stop=out.matched_stop,
            completion_tokens=completion[index],
            total_completion_tokens=sum(completion),
            prompt_logprobs=out.prompt_logprobs,
        )
