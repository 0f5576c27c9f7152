"""The engine: a background thread running iteration-level (continuous) batching.

Every iteration it admits waiting requests (if a sequence slot, KV budget and an adapter
slot are free), runs ONE forward pass over all decoding rows plus prefill chunks of at
most ``max_num_batched_tokens`` tokens, samples, and streams each request's delta to its
consumer. Finished and aborted requests leave the batch at once.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from hearth_server.engine.adapters import AdapterStore
from hearth_server.engine.detok import IncrementalDecoder, StopChecker
from hearth_server.engine.lora import LoRAWeights, SlotTable, load_adapter, patch_model
from hearth_server.engine.params import SamplingParams, StepOutput
from hearth_server.engine.runner import Chunk, ModelRunner
from hearth_server.engine.sampler import RowState, sample

log = logging.getLogger(__name__)


@dataclass
class EngineConfig:
    max_model_len: int = 2048
    max_num_seqs: int = 16
    max_num_batched_tokens: int = 256
    kv_cache_tokens: int = 65536
    max_waiting: int = 256
    max_loras: int = 4
    max_cpu_loras: int = 8
    max_lora_rank: int = 16


class EngineOverloaded(Exception):
    """The waiting queue is full (rendered as 503)."""


class EngineDead(Exception):
    """The engine thread stopped after an internal error (rendered as 503)."""


class StatsObserver(Protocol):
    def on_first_token(self, seconds: float, adapter: str | None) -> None: ...
    def on_token_latency(self, seconds: float) -> None: ...
    def on_finished(self, prompt_tokens: int, generation_tokens: int, reason: str) -> None: ...


Emit = Callable[[StepOutput], None]


@dataclass(eq=False)
class Sequence:
    prompt_ids: list[int]
    params: SamplingParams
    emit: Emit
    adapter: str | None = None
    id: int = field(default_factory=itertools.count().__next__)
    arrival: float = field(default_factory=time.monotonic)
    cancelled: bool = False  # aborted while still queued
    # engine-thread state
    slot: int = -1
    lora_slot: int = -1
    cached: int = 0  # positions written to the KV cache
    output_ids: list[int] = field(default_factory=list)
    row: RowState | None = None
    decoder: IncrementalDecoder | None = None
    stops: StopChecker | None = None
    last_token_time: float = 0.0

    @property
    def reserve(self) -> int:
        return len(self.prompt_ids) + self.params.max_tokens


class Engine:
    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Any,
        config: EngineConfig,
        stats: StatsObserver | None = None,
    ) -> None:
        self.tokenizer = tokenizer
        self.config = config
        self.stats = stats
        self.lora_ctx, self.lora_modules = patch_model(
            model, config.max_loras, config.max_lora_rank
        )
        self.runner = ModelRunner(
            model, self.lora_ctx, config.max_num_seqs, config.max_model_len, config.max_loras
        )
        self.slots = SlotTable(config.max_loras, self.lora_modules)
        self.adapters = AdapterStore(config.max_cpu_loras, self.read_adapter)
        self.eos_ids = _eos_ids(model, tokenizer)
        self._inbox: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._queued: set[int] = set()  # submitted, not admitted (bounded by max_waiting)
        self.waiting: deque[Sequence] = deque()
        self.running: list[Sequence] = []  # running[i].slot == i
        self.reserved = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="hearth-engine", daemon=True)

    # -- public, thread-safe -------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def shutdown(self) -> None:
        self._stop.set()
        self._inbox.put(("wake", None))
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and self.error is None

    def submit(self, seq: Sequence) -> None:
        if not self.alive:
            raise EngineDead(f"engine is not running: {self.error!r}")
        with self._lock:
            if len(self._queued) >= self.config.max_waiting:
                raise EngineOverloaded(
                    f"server overloaded: {len(self._queued)} requests already waiting"
                )
            self._queued.add(seq.id)
        self._inbox.put(("add", seq))

    def abort(self, seq: Sequence) -> None:
        """Cancel ``seq``. A queued one gives its queue place back at once, so a
        client retrying right after an overload is not refused by a ghost."""
        with self._lock:
            if seq.id in self._queued:
                self._queued.discard(seq.id)
                seq.cancelled = True
        self._inbox.put(("abort", seq.id))

    def release_adapter(self, name: str) -> None:
        """Free ``name``'s active slot once no running request uses it."""
        self._inbox.put(("drop", name))

    def read_adapter(self, name: str, path: Any) -> LoRAWeights:
        return load_adapter(
            name, path, self.lora_modules, self.config.max_lora_rank, self.runner.dtype
        )

    @property
    def num_waiting(self) -> int:
        with self._lock:
            return len(self._queued)

    @property
    def kv_usage(self) -> float:
        used = sum(s.cached for s in list(self.running))
        return used / self.config.kv_cache_tokens

    # -- engine thread -------------------------------------------------------------------
    def _loop(self) -> None:
        torch.set_grad_enabled(False)
        try:
            while not self._stop.is_set():
                self._drain(block=not (self.running or self.waiting))
                self._admit()
                if self.running:
                    self._step()
        except BaseException as exc:  # the engine is dead; fail everyone visibly
            log.exception("engine loop crashed")
            self.error = exc
            for seq in [*self.running, *self.waiting]:
                seq.emit(StepOutput(finished=True, finish_reason="error", error=repr(exc)))
            self.running.clear()
            self.waiting.clear()

    def _drain(self, block: bool) -> None:
        try:
            item = self._inbox.get(timeout=0.5) if block else self._inbox.get_nowait()
        except queue.Empty:
            return
        while True:
            kind, arg = item
            if kind == "add":
                self.waiting.append(arg)
            elif kind == "abort":
                self._abort(arg)
            elif kind == "drop":
                self.slots.drop(arg)
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                return

    def _abort(self, seq_id: int) -> None:
        for seq in self.waiting:
            if seq.id == seq_id:
                self._dequeue(seq)
                return
        for seq in self.running:
            if seq.id == seq_id:
                self._finish(seq, "abort")
                return

    def _admit(self) -> None:
        cfg = self.config
        for seq in list(self.waiting):
            if seq.cancelled:
                self._dequeue(seq)
                continue
            if len(self.running) >= cfg.max_num_seqs:
                return
            if self.reserved + seq.reserve > cfg.kv_cache_tokens:
                return  # FCFS: wait for KV space rather than starving big requests
            if seq.adapter is not None:
                weights = self.adapters.weights(seq.adapter)
                if weights is None:
                    self._dequeue(seq)
                    seq.emit(
                        StepOutput(
                            finished=True,
                            finish_reason="error",
                            error=f"adapter {seq.adapter!r} was unloaded",
                        )
                    )
                    continue
                lora_slot = self.slots.acquire(weights)
                if lora_slot is None:
                    continue  # every adapter slot is busy; let others pass
                seq.lora_slot = lora_slot
            self._dequeue(seq)
            self._start(seq)

    def _dequeue(self, seq: Sequence) -> None:
        self.waiting.remove(seq)
        with self._lock:
            self._queued.discard(seq.id)

    def _start(self, seq: Sequence) -> None:
        p = seq.params
        gen = torch.Generator().manual_seed(p.seed) if p.seed is not None else None
        seq.row = RowState(p, seq.prompt_ids, seq.output_ids, gen, [])
        seq.decoder = IncrementalDecoder(self.tokenizer, p.skip_special_tokens)
        seq.stops = StopChecker(p.stop)
        seq.slot = len(self.running)
        self.running.append(seq)
        self.reserved += seq.reserve

    def _step(self) -> None:
        cfg = self.config
        decode = [s for s in self.running if s.cached >= len(s.prompt_ids)]
        decode.sort(key=lambda s: s.lora_slot)
        budget = max(cfg.max_num_batched_tokens - len(decode), 16)
        prefill: list[tuple[Sequence, Chunk]] = []
        for s in self.running:
            if s.cached >= len(s.prompt_ids) or budget <= 0:
                continue
            piece = s.prompt_ids[s.cached : s.cached + budget]
            done = s.cached + len(piece) == len(s.prompt_ids)
            prefill.append((s, Chunk(s.slot, piece, s.cached, s.lora_slot, want_logits=done)))
            budget -= len(piece)
        dec_chunks = [Chunk(s.slot, [s.output_ids[-1]], s.cached, s.lora_slot) for s in decode]
        logits = self.runner.step(dec_chunks, [c for _, c in prefill], len(self.running))
        for s, c in prefill:
            s.cached += len(c.tokens)
        for s in decode:
            s.cached += 1
        sampled = decode + [s for s, c in prefill if c.want_logits]
        rows = []
        for s in sampled:
            assert s.row is not None
            early = len(s.output_ids) < s.params.min_tokens  # no stopping before min_tokens
            s.row.banned = [*self.eos_ids, *s.params.stop_token_ids] if early else []
            rows.append(s.row)
        tokens, logprobs = sample(logits, rows)
        now = time.monotonic()
        for s, tok, lp in zip(sampled, tokens, logprobs, strict=True):
            self._append(s, tok, lp, now)

    def _append(self, s: Sequence, tok: int, lp: Any, now: float) -> None:
        assert s.decoder is not None and s.stops is not None
        first = not s.output_ids
        s.output_ids.append(tok)
        if self.stats is not None:
            if first:
                self.stats.on_first_token(now - s.arrival, s.adapter)
            else:
                self.stats.on_token_latency(now - s.last_token_time)
        s.last_token_time = now
        p = s.params
        reason: str | None = None
        matched: str | int | None = None
        stop_tok = tok in p.stop_token_ids or (tok in self.eos_ids and not p.ignore_eos)
        if stop_tok and len(s.output_ids) >= p.min_tokens:
            reason, matched = "stop", tok
            text, _ = s.stops.feed(s.decoder.flush(), final=True)
        else:
            delta = s.decoder.push(tok)
            at_limit = (
                len(s.output_ids) >= p.max_tokens or s.cached + 1 >= self.config.max_model_len
            )
            if at_limit:
                delta += s.decoder.flush()
            text, hit = s.stops.feed(delta, final=at_limit)
            if hit:
                reason, matched = "stop", s.stops.matched
            elif at_limit:
                reason = "length"
        out = StepOutput(
            text=text,
            token_ids=[tok],
            logprobs=[lp] if lp is not None else [],
            prompt_tokens=len(s.prompt_ids),
            completion_tokens=len(s.output_ids),
        )
        if reason is not None:
            out.finished, out.finish_reason, out.matched_stop = True, reason, matched
        s.emit(out)
        if reason is not None:
            self._finish(s, reason, emit=False)

    def _finish(self, s: Sequence, reason: str, emit: bool = True) -> None:
        if emit:
            s.emit(
                StepOutput(
                    finished=True,
                    finish_reason=reason,
                    prompt_tokens=len(s.prompt_ids),
                    completion_tokens=len(s.output_ids),
                )
            )
        if self.stats is not None:
            self.stats.on_finished(len(s.prompt_ids), len(s.output_ids), reason)
        if s.lora_slot >= 0:
            self.slots.release(s.lora_slot)
            if s.adapter is not None and self.adapters.info(s.adapter) is None:
                self.slots.drop(s.adapter)  # unloaded while running: free its slot now
        self.reserved -= s.reserve
        last = self.running.pop()
        if last is not s:  # fill the hole so active slots stay 0..n-1
            self.runner.move_slot(last.slot, s.slot, last.cached)
            last.slot = s.slot
            self.running[s.slot] = last


def _eos_ids(model: torch.nn.Module, tokenizer: Any) -> list[int]:
    ids: set[int] = set()
    gen_cfg = getattr(model, "generation_config", None)
    eos = getattr(gen_cfg, "eos_token_id", None)
    for value in (eos, tokenizer.eos_token_id):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, list):
            ids.update(v for v in value if isinstance(v, int))
    return sorted(ids)
