"""The engine: a background thread running iteration-level (continuous) batching.

Every iteration it admits waiting requests (if a sequence slot, KV budget and an adapter
slot are free), runs ONE forward pass over all decoding rows plus prefill chunks of at
most ``max_num_batched_tokens`` tokens, samples, and streams each request's delta to its
consumer. Finished and aborted requests leave the batch at once.

Robustness rules:

- The loop body runs under ``torch.inference_mode()``, and so does every runner method
  that touches the KV cache, so cache tensors are never mixed across grad modes.
- Whatever can only harm one request is checked at ``submit`` (``ParamError``, a
  ``ValueError`` naming the field) or fails that request alone with finish reason
  ``"error"``: non-finite logits, a failing consumer, an adapter that cannot be read.
- Anything else that raises in the loop is an engine failure: every running, waiting
  and not-yet-drained request gets an ``"error"`` output at once, ``alive`` turns
  False and ``failure`` says why (the server reports it and exits so it is restarted).
"""

from __future__ import annotations

import itertools
import logging
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

from hearth_server.engine.adapters import AdapterInfo, AdapterStore
from hearth_server.engine.detok import IncrementalDecoder, StopChecker
from hearth_server.engine.embeddings import EmbeddingJob, EmbeddingQueue
from hearth_server.engine.lora import LoRAWeights, SlotTable, load_adapter, patch_model
from hearth_server.engine.params import ParamError, SamplingParams, StepOutput, TokenLogprob
from hearth_server.engine.prefix_cache import PrefixCache, PrefixCacheReadings
from hearth_server.engine.prompt_logprobs import score_chunk
from hearth_server.engine.runner import Chunk, ModelRunner
from hearth_server.engine.sampler import RowState, Sampled, sample
from hearth_server.engine.structured import GrammarCache, GrammarError

log = logging.getLogger(__name__)

# Testing hook only: makes the engine loop raise after this many forward steps, so tests
# (and the operator's component test, in a pod) can prove that a dead engine is noticed
# and the server restarted. Never set it in production.
CRASH_ENV = "HEARTH_SERVER_CRASH_ENGINE_AFTER_STEPS"

# Tokens per prefix-cache block: small enough that most of a shared prefix is reused,
# large enough that a long prompt is a few hundred copies, not thousands.
PREFIX_BLOCK_TOKENS = 16


def crash_after_steps_from_env() -> int | None:
    raw = os.environ.get(CRASH_ENV, "").strip()
    if not raw:
        return None
    try:
        steps = int(raw)
    except ValueError:
        steps = 0
    if steps < 1:
        raise ValueError(f"{CRASH_ENV} must be a positive integer, got {raw!r}")
    return steps


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
    # Prompt tokens whose KV the prefix cache may keep for later requests; 0: off.
    prefix_cache_tokens: int = 0
    # Testing hook (see CRASH_ENV): raise inside the loop after this many steps.
    crash_after_steps: int | None = field(default_factory=crash_after_steps_from_env)


class EngineOverloaded(Exception):
    """The waiting queue is full (rendered as 503)."""


class EngineDead(Exception):
    """The engine thread stopped after an internal error (rendered as 503)."""


class InjectedEngineFault(RuntimeError):
    """Raised by the ``crash_after_steps`` testing hook."""


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
    adapter_key: tuple[str, int] | None = None  # the adapter weights' identity
    cached: int = 0  # positions written to the KV cache
    reused: int = 0  # of those, copied from the prefix cache (prompt tokens not computed)
    output_ids: list[int] = field(default_factory=list)
    row: RowState | None = None
    decoder: IncrementalDecoder | None = None
    stops: StopChecker | None = None
    last_token_time: float = 0.0
    prompt_logprobs: list[TokenLogprob | None] = field(default_factory=list)

    @property
    def needs_prompt_logprobs(self) -> bool:
        """Every prompt position must be computed (not taken from the prefix cache)."""
        return self.params.prompt_logprobs is not None

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
        self.vocab_size = self.runner.vocab_size
        self.slots = SlotTable(config.max_loras, self.lora_modules)
        self.adapters = AdapterStore(config.max_cpu_loras, self.read_adapter)
        self.eos_ids = _eos_ids(model, tokenizer)
        self.grammars = GrammarCache(tokenizer, self.vocab_size, self.eos_ids)
        self.prefix_cache: PrefixCache[torch.Tensor] | None = None
        if config.prefix_cache_tokens > 0:
            self.prefix_cache = PrefixCache(PREFIX_BLOCK_TOKENS, config.prefix_cache_tokens)
        # Embedding jobs run on this thread between steps (see engine/embeddings.py).
        self.embeddings = EmbeddingQueue(model, config.max_num_batched_tokens)
        self._inbox: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        # Guards _queued, _closed and every put of an "add" into the inbox, so that a
        # request is either refused by submit or failed by the dying loop, never lost.
        self._lock = threading.Lock()
        self._queued: set[int] = set()  # submitted, not admitted (bounded by max_waiting)
        self._closed = False  # the loop has exited; submit refuses
        self.waiting: deque[Sequence] = deque()
        self.running: list[Sequence] = []  # running[i].slot == i
        self.reserved = 0
        self.error: BaseException | None = None  # why the loop crashed
        # Called (on the engine thread) with ``failure`` once a crashed loop has failed
        # every request; the server uses it to exit so that it is restarted.
        self.on_failure: Callable[[str], None] | None = None
        self.steps = 0  # forward passes run so far
        # Engine-thread hooks for an engine process (engine_process/child.py): called
        # after every loop iteration (to send that iteration's outputs in one message),
        # and with each request id that leaves the waiting queue (admitted or dropped).
        self.on_iteration: Callable[[], None] | None = None
        self.on_dequeue: Callable[[int], None] | None = None
        self._stop = threading.Event()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="hearth-engine", daemon=True)

    # -- public, thread-safe -------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def run(self, started: Callable[[], None] | None = None) -> None:
        """Run the loop on the calling thread until ``stop``; ``started`` is called once
        the engine accepts requests, before the first iteration. An engine process runs
        it on its main thread: measured here, torch's CPU kernels decode one sequence
        about 40% slower when called from a secondary thread."""
        self._thread = threading.current_thread()
        if started is not None:
            started()
        self._loop()

    def stop(self) -> None:
        """Ask the loop to exit after its current iteration (does not wait)."""
        self._stop.set()
        self._inbox.put(("wake", None))

    def shutdown(self) -> None:
        self.stop()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and self.error is None and not self._closed

    @property
    def failure(self) -> str | None:
        """Why the engine loop died ("RuntimeError: ..."); None while it runs and after
        a clean shutdown."""
        exc = self.error
        return None if exc is None else f"{type(exc).__name__}: {exc}"

    def wait_stopped(self, timeout: float | None = None) -> bool:
        """Block until the loop has exited and failed every request; True if it has."""
        return self._stopped.wait(timeout)

    def check(self, seq: Sequence) -> None:
        """Refuse a request the loop could not serve; raises ParamError (a ValueError
        whose ``param`` names the field). ``submit`` calls it."""
        check_sequence(seq, self.config, self.vocab_size, self.grammars)

    def submit(self, seq: Sequence) -> None:
        """Queue ``seq``. Raises ParamError (invalid request), EngineOverloaded or
        EngineDead."""
        self.check(seq)
        with self._lock:
            if self._closed or not self.alive:
                raise EngineDead(self._dead_message())
            if len(self._queued) >= self.config.max_waiting:
                raise EngineOverloaded(
                    f"server overloaded: {len(self._queued)} requests already waiting"
                )
            self._queued.add(seq.id)
            self._inbox.put(("add", seq))

    def submit_embedding(self, job: EmbeddingJob) -> None:
        """Queue an embedding job (run between steps). Raises EngineDead."""
        with self._lock:
            if self._closed or not self.alive:
                raise EngineDead(self._dead_message())
            self._inbox.put(("embed", job))

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

    def cancel_embedding(self, job: EmbeddingJob) -> None:
        """Drop ``job`` at its next micro-batch (its client has gone)."""
        job.cancelled = True

    # -- adapters and readings, as the HTTP layer sees them (EngineClient mirrors these) --
    def add_adapter(self, name: str, uri: str, path: Path) -> tuple[AdapterInfo, int]:
        """Read ``name``'s weights from ``path`` and serve them: (its info, its size in
        bytes). Raises AdapterError naming what is wrong with the files."""
        weights = self.read_adapter(name, path)
        info = AdapterInfo(name, uri, Path(path), weights.rank, time.time())
        self.adapters.add(info, weights)
        return info, weights.nbytes

    def remove_adapter(self, name: str) -> bool:
        """Stop serving ``name``; running requests on it finish first. False if unknown."""
        removed = self.adapters.remove(name)
        if removed:
            self.release_adapter(name)
        return removed

    def adapter_info(self, name: str) -> AdapterInfo | None:
        return self.adapters.info(name)

    def adapter_list(self) -> list[AdapterInfo]:
        return self.adapters.all()

    @property
    def hidden_size(self) -> int:
        return self.embeddings.hidden_size

    def gauges(self) -> dict[str, float]:
        """The engine gauges of /metrics (read from any thread; approximate)."""
        return {
            "num_requests_running": float(len(self.running)),
            "num_requests_waiting": float(self.num_waiting),
            "kv_cache_usage_perc": self.kv_usage,
            "lora_adapters_loaded": float(len(self.adapters.registry)),
            "lora_adapters_active": float(len(self.slots.active)),
            "engine_alive": float(self.alive),
        }

    def prefix_readings(self) -> PrefixCacheReadings | None:
        cache = self.prefix_cache
        return None if cache is None else cache.readings()

    @property
    def num_waiting(self) -> int:
        with self._lock:
            return len(self._queued)

    @property
    def kv_usage(self) -> float:
        used = sum(s.cached for s in list(self.running))
        return used / self.config.kv_cache_tokens

    def _dead_message(self) -> str:
        failure = self.failure
        return f"engine failed: {failure}" if failure else "engine is not running"

    # -- engine thread -------------------------------------------------------------------
    def _loop(self) -> None:
        try:
            # One grad mode for everything the loop does: cache tensors allocated in a
            # step and written by a later finish must agree (see runner).
            with torch.inference_mode():
                while not self._stop.is_set():
                    self._drain(block=not (self.running or self.waiting or self.embeddings))
                    self._admit()
                    if self.embeddings:
                        self.embeddings.run_one_batch()
                    if self.running:
                        self._step()
                    if self.on_iteration is not None:
                        self.on_iteration()
        except BaseException as exc:  # the engine is dead; fail everyone visibly
            log.exception("engine loop crashed")
            self.error = exc
        finally:
            self._fail_everyone(self._dead_message())
            self._stopped.set()
        failure = self.failure
        if failure is not None and self.on_failure is not None:
            try:
                self.on_failure(failure)
            except Exception:
                log.exception("engine on_failure callback failed")

    def _fail_everyone(self, reason: str) -> None:
        """Error every running, waiting and still-undrained request, and refuse more."""
        undrained: list[Sequence] = []
        with self._lock:
            self._closed = True
            while True:
                try:
                    kind, arg = self._inbox.get_nowait()
                except queue.Empty:
                    break
                if kind == "add":
                    undrained.append(arg)
                elif kind == "embed":
                    self.embeddings.jobs.append(arg)
            self._queued.clear()
        self.embeddings.fail_all(reason)
        victims = [*self.running, *self.waiting, *undrained]
        self.running.clear()
        self.waiting.clear()
        fail_sequences(victims, reason)

    def _emit(self, seq: Sequence, out: StepOutput) -> bool:
        """Deliver ``out``; a consumer that raises loses its request, not the engine."""
        try:
            seq.emit(out)
        except Exception:
            log.exception("consumer of request %d failed; dropping the request", seq.id)
            return False
        return True

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
                self._forget_prefixes(arg)
            elif kind == "embed":
                self.embeddings.jobs.append(arg)
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
                weights, problem = self._adapter_weights(seq.adapter)
                if weights is None:
                    self._dequeue(seq)
                    self._emit(seq, StepOutput(finished=True, finish_reason="error", error=problem))
                    continue
                lora_slot = self.slots.acquire(weights)
                if lora_slot is None:
                    continue  # every adapter slot is busy; let others pass
                seq.lora_slot = lora_slot
                seq.adapter_key = weights.key
            self._dequeue(seq)
            self._start(seq)

    def _adapter_weights(self, name: str) -> tuple[LoRAWeights | None, str]:
        try:
            weights = self.adapters.weights(name)  # may re-read an evicted one from disk
        except Exception as exc:  # e.g. its files vanished since it was loaded
            log.exception("adapter %s could not be re-read", name)
            return None, f"adapter {name!r} could not be read: {exc}"
        return weights, f"adapter {name!r} was unloaded"

    def _dequeue(self, seq: Sequence) -> None:
        self.waiting.remove(seq)
        with self._lock:
            self._queued.discard(seq.id)
        if self.on_dequeue is not None:
            self.on_dequeue(seq.id)

    def _start(self, seq: Sequence) -> None:
        p = seq.params
        try:
            gen = torch.Generator().manual_seed(p.seed) if p.seed is not None else None
            seq.row = RowState(p, seq.prompt_ids, seq.output_ids, gen, [])
            if p.structured is not None:
                seq.row.constraint = self.grammars.constraint(p.structured)
            seq.decoder = IncrementalDecoder(self.tokenizer, p.skip_special_tokens)
            seq.stops = StopChecker(p.stop)
        except Exception as exc:  # not in the batch yet: only this request fails
            log.exception("request %d could not start", seq.id)
            if seq.lora_slot >= 0:
                self.slots.release(seq.lora_slot)
            error = f"request could not start: {exc}"
            self._emit(seq, StepOutput(finished=True, finish_reason="error", error=error))
            return
        seq.slot = len(self.running)
        self.running.append(seq)
        self.reserved += seq.reserve
        if self.prefix_cache is not None and not seq.needs_prompt_logprobs:
            self._reuse_prefix(seq)

    # -- prefix cache (engine thread) ---------------------------------------------------
    # Namespaces are ``seq.adapter_key``: adapters change K and V (k_proj and v_proj are
    # adapted), so base rows share one namespace and each adapter read has its own.
    def _reuse_prefix(self, seq: Sequence) -> None:
        """Start ``seq`` (just given its slot) from the longest cached prefix of its prompt."""
        assert self.prefix_cache is not None
        blocks = self.prefix_cache.match(seq.adapter_key, seq.prompt_ids)
        if not blocks:
            return
        try:
            seq.cached = seq.reused = self.runner.write_blocks(seq.slot, blocks)
        except Exception:  # e.g. out of memory growing the KV cache: prefill it all
            log.exception("request %d: copying its cached prefix failed", seq.id)
            seq.cached = seq.reused = 0

    def _store_prefix(self, seq: Sequence) -> None:
        """Keep the KV of ``seq``'s full prompt blocks (its prefill just completed)."""
        cache = self.prefix_cache
        assert cache is not None
        if seq.adapter is not None and self.adapters.info(seq.adapter) is None:
            return  # unloaded meanwhile: nobody can ask for this adapter's prefixes
        have = cache.cached_blocks(seq.adapter_key, seq.prompt_ids)
        size = cache.block_size
        full = len(seq.prompt_ids) // size
        if have >= full:
            return
        try:
            blocks = self.runner.read_blocks(seq.slot, have * size, full * size, size)
        except Exception:  # e.g. out of memory: the cache gives way, never a request
            log.exception("prefix cache: storing a prompt failed; emptying the cache")
            cache.drop(lambda _: True)
            return
        cache.insert(seq.adapter_key, seq.prompt_ids, have, blocks)

    def _forget_prefixes(self, adapter: str) -> None:
        if self.prefix_cache is not None:
            self.prefix_cache.drop(lambda ns: isinstance(ns, tuple) and ns[0] == adapter)

    def _step(self) -> None:
        cfg = self.config
        if cfg.crash_after_steps is not None and self.steps >= cfg.crash_after_steps:
            raise InjectedEngineFault(
                f"injected engine failure after {self.steps} steps ({CRASH_ENV})"
            )
        self.steps += 1
        decode = [s for s in self.running if s.cached >= len(s.prompt_ids)]
        decode.sort(key=lambda s: s.lora_slot)
        budget = max(cfg.max_num_batched_tokens - len(decode), 16)
        prefill: list[tuple[Sequence, Chunk]] = []
        for s in self.running:
            if s.cached >= len(s.prompt_ids) or budget <= 0:
                continue
            piece = s.prompt_ids[s.cached : s.cached + budget]
            done = s.cached + len(piece) == len(s.prompt_ids)
            chunk = Chunk(s.slot, piece, s.cached, s.lora_slot, want_logits=done)
            chunk.prompt_logits = s.needs_prompt_logprobs
            prefill.append((s, chunk))
            budget -= len(piece)
        dec_chunks = [Chunk(s.slot, [s.output_ids[-1]], s.cached, s.lora_slot) for s in decode]
        logits = self.runner.step(dec_chunks, [c for _, c in prefill], len(self.running))
        for s, c in prefill:
            if c.position_logits is not None:
                n_top = s.params.prompt_logprobs or 0
                s.prompt_logprobs += score_chunk(c.position_logits, s.prompt_ids, c.start, n_top)
            s.cached += len(c.tokens)
            if c.want_logits and self.prefix_cache is not None:
                self._store_prefix(s)
        for s in decode:
            s.cached += 1
        sampled = decode + [s for s, c in prefill if c.want_logits]
        rows = []
        for s in sampled:
            assert s.row is not None
            early = len(s.output_ids) < s.params.min_tokens  # no stopping before min_tokens
            s.row.banned = [*self.eos_ids, *s.params.stop_token_ids] if early else []
            rows.append(s.row)
        results = sample(logits, rows)
        now = time.monotonic()
        for s, result in zip(sampled, results, strict=True):
            self._append(s, result, now)

    def _append(self, s: Sequence, result: Sampled, now: float) -> None:
        if result.token is None:
            self._finish(s, "error", error=result.error or "sampling failed")
            return
        try:
            out = self._advance(s, result, now)
        except Exception as exc:  # detokenising or stop checks: this request only
            log.exception("request %d failed after sampling", s.id)
            self._finish(s, "error", error=f"internal error: {exc!r}")
            return
        delivered = self._emit(s, out)
        if out.finished:
            self._finish(s, out.finish_reason or "stop", emit=False)
        elif not delivered:
            self._finish(s, "abort", emit=False)

    def _advance(self, s: Sequence, result: Sampled, now: float) -> StepOutput:
        """Record the sampled token; return the request's output for this step."""
        assert s.decoder is not None and s.stops is not None and result.token is not None
        tok, lp = result.token, result.logprob
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
        # A constrained row ends when its grammar admits nothing more (EOS was masked
        # until then, so a grammar that is never completed ends at "length").
        constraint = s.row.constraint if s.row is not None else None
        complete = constraint is not None and constraint.advance(tok)
        if stop_tok and len(s.output_ids) >= p.min_tokens:
            reason, matched = "stop", tok
            text, _ = s.stops.feed(s.decoder.flush(), final=True)
        else:
            delta = s.decoder.push(tok)
            at_limit = (
                len(s.output_ids) >= p.max_tokens or s.cached + 1 >= self.config.max_model_len
            )
            if at_limit or complete:
                delta += s.decoder.flush()
            text, hit = s.stops.feed(delta, final=at_limit or complete)
            if hit or complete:
                reason, matched = "stop", s.stops.matched if hit else None
            elif at_limit:
                reason = "length"
        out = StepOutput(
            text=text,
            token_ids=[tok],
            logprobs=[lp] if lp is not None else [],
            prompt_tokens=len(s.prompt_ids),
            completion_tokens=len(s.output_ids),
            cached_tokens=s.reused,
        )
        if first and s.needs_prompt_logprobs:
            out.prompt_logprobs = s.prompt_logprobs
        if reason is not None:
            out.finished, out.finish_reason, out.matched_stop = True, reason, matched
        return out

    def _finish(
        self, s: Sequence, reason: str, emit: bool = True, error: str | None = None
    ) -> None:
        if emit:
            self._emit(
                s,
                StepOutput(
                    finished=True,
                    finish_reason=reason,
                    error=error,
                    prompt_tokens=len(s.prompt_ids),
                    completion_tokens=len(s.output_ids),
                    cached_tokens=s.reused,
                ),
            )
        if self.stats is not None:
            try:
                self.stats.on_finished(len(s.prompt_ids), len(s.output_ids), reason)
            except Exception:
                log.exception("stats observer failed")
        if s.lora_slot >= 0:
            self.slots.release(s.lora_slot)
            if s.adapter is not None and self.adapters.info(s.adapter) is None:
                self.slots.drop(s.adapter)  # unloaded while running: free its slot now
        self.reserved -= s.reserve
        hole = s.slot
        last = self.running.pop()
        self.runner.clear_slot(hole, s.cached)
        if last is not s:  # fill the hole so active slots stay 0..n-1
            self.runner.move_slot(last.slot, hole, last.cached)
            self.runner.clear_slot(last.slot, last.cached)
            last.slot = hole
            self.running[hole] = last


def fail_sequences(victims: list[Sequence], reason: str) -> None:
    """Give each of ``victims`` its final ``"error"`` output; a consumer that raises does
    not keep the others from hearing (whoever calls this is already failing)."""
    for seq in victims:
        out = StepOutput(
            finished=True,
            finish_reason="error",
            error=reason,
            prompt_tokens=len(seq.prompt_ids),
            completion_tokens=len(seq.output_ids),
        )
        try:
            seq.emit(out)
        except BaseException:
            log.exception("consumer of request %d failed", seq.id)


def check_sequence(
    seq: Sequence, cfg: EngineConfig, vocab_size: int, grammars: GrammarCache
) -> None:
    """Refuse a request an engine with ``cfg`` could not serve: raises ParamError (a
    ValueError whose ``param`` names the field). Pure but for the grammar cache, so the
    server process runs it too, before a request crosses to the engine process."""
    p = seq.params
    p.validate()
    p.check_token_ids(vocab_size)
    ids = seq.prompt_ids
    if not ids:
        raise ParamError("prompt", "prompt must contain at least one token")
    if len(ids) >= cfg.max_model_len:
        raise ParamError(
            "prompt",
            f"prompt is {len(ids)} tokens but the context is {cfg.max_model_len} tokens "
            "(leaving no room for output)",
        )
    bad = next((t for t in ids if type(t) is not int or not 0 <= t < vocab_size), None)
    if bad is not None:
        raise ParamError(
            "prompt",
            f"prompt token id {bad!r} is outside the vocabulary (0 to {vocab_size - 1})",
        )
    if seq.reserve > cfg.kv_cache_tokens:
        raise ParamError(
            "max_tokens",
            f"prompt ({len(ids)} tokens) + max_tokens ({p.max_tokens}) exceeds the KV "
            f"cache budget of {cfg.kv_cache_tokens} tokens",
        )
    if p.structured is not None:
        try:
            grammars.compile(p.structured)  # cached: each distinct spec once
        except GrammarError as exc:
            raise ParamError("response_format", f"response_format: {exc}") from None


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
