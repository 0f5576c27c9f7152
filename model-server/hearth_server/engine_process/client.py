"""``EngineClient``: the server process's handle on an engine running in its own process.

Why a process: the HTTP layer and the engine loop in one process share one GIL, so every
torch call that returns while an HTTP handler runs waits for it, and the model's forward
pass loses a share of the CPU to hand-offs. In its own process the engine never waits
for the HTTP side; the two exchange small pickled messages over one pipe (a request's
token ids and sampling parameters one way, one message per engine iteration with every
row's new text the other way).

The client offers what ``Engine`` offers the HTTP layer (``engine.handle.EngineHandle``)
with the same errors at the same moments: requests are validated here, before they cross
(``ParamError``); the waiting queue is counted here (``EngineOverloaded``); a request in
flight when the engine process dies gets an ``"error"`` output, and later ones
``EngineDead``, whether the engine loop crashed (its reason is kept) or the process was
killed (its exit code is).
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import threading
import time
from concurrent.futures import Future
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import torch

from hearth_server.config import ServerSettings
from hearth_server.engine.adapters import AdapterInfo
from hearth_server.engine.embeddings import EmbeddingJob
from hearth_server.engine.engine import (
    EngineDead,
    EngineOverloaded,
    Sequence,
    StatsObserver,
    check_sequence,
    fail_sequences,
)
from hearth_server.engine.lora import AdapterError
from hearth_server.engine.params import StepOutput
from hearth_server.engine.prefix_cache import PrefixCacheReadings
from hearth_server.engine.structured import GrammarCache
from hearth_server.engine_process import child, wire

log = logging.getLogger("hearth_server.engine_process")

# How long a clean shutdown waits for the engine process before killing it.
_STOP_TIMEOUT_S = 10.0


class EngineProcessError(RuntimeError):
    """Why the engine process stopped serving (its loop crashed, or it was killed)."""


class EngineClient:
    def __init__(self, process: BaseProcess, conn: Connection, ready: wire.Ready) -> None:
        self._process = process
        self._conn = conn
        self.tokenizer: Any = ready.tokenizer
        self.config = ready.config
        self.vocab_size = ready.vocab_size
        self._hidden_size = ready.hidden_size
        self.model_root = ready.model_root
        self.grammars = GrammarCache(ready.tokenizer, ready.vocab_size, ready.eos_ids)
        self.stats: StatsObserver | None = None
        self.error: BaseException | None = None
        self._lock = threading.Lock()  # the tables below
        self._send_lock = threading.Lock()  # one writer on the pipe at a time
        self._open: dict[int, Sequence] = {}  # submitted, not finished
        self._queued: set[int] = set()  # submitted, not yet admitted by the engine
        self._jobs: dict[int, EmbeddingJob] = {}
        self._job_ids: dict[int, int] = {}  # id(job) -> job id
        self._replies: dict[int, Future[Any]] = {}
        self._adapters: dict[str, AdapterInfo] = {}  # what the engine process serves
        self._gauges: dict[str, float] = dict(ready.gauges)
        self._prefix: PrefixCacheReadings | None = ready.prefix
        self._numbers = itertools.count()
        self._closed = False  # shut down (or dead): submit refuses
        self._reader = threading.Thread(target=self._read, name="hearth-engine-pipe", daemon=True)

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        if not self._reader.is_alive() and not self._closed:
            self._reader.start()

    def shutdown(self) -> None:
        with self._lock:
            self._closed = True
        self._send_quietly(wire.Shutdown())  # an OSError: it is gone already
        if not _wait_exit(self._process, _STOP_TIMEOUT_S):
            log.warning("the engine process did not stop in %.0fs; killing it", _STOP_TIMEOUT_S)
            self._process.kill()
            self._process.join(_STOP_TIMEOUT_S)
        self._reader.join(_STOP_TIMEOUT_S)
        self._conn.close()

    @property
    def alive(self) -> bool:
        return self._reader.is_alive() and self.error is None and not self._closed

    @property
    def failure(self) -> str | None:
        exc = self.error
        return None if exc is None else str(exc)

    @property
    def hidden_size(self) -> int:
        return self._hidden_size

    @property
    def pid(self) -> int | None:
        return self._process.pid

    # -- requests --------------------------------------------------------------------------
    def submit(self, seq: Sequence) -> None:
        check_sequence(seq, self.config, self.vocab_size, self.grammars)
        with self._lock:
            if not self.alive:
                raise EngineDead(self._dead_message())
            if len(self._queued) >= self.config.max_waiting:
                raise EngineOverloaded(
                    f"server overloaded: {len(self._queued)} requests already waiting"
                )
            self._queued.add(seq.id)
            self._open[seq.id] = seq
        self._send_quietly(
            wire.Submit(seq.id, seq.prompt_ids, seq.params, seq.adapter, seq.arrival)
        )

    def abort(self, seq: Sequence) -> None:
        with self._lock:
            self._queued.discard(seq.id)
            known = self._open.pop(seq.id, None) is not None
        if known:
            self._send_quietly(wire.Abort(seq.id))

    def submit_embedding(self, job: EmbeddingJob) -> None:
        with self._lock:
            if not self.alive:
                raise EngineDead(self._dead_message())
            number = next(self._numbers)
            self._jobs[number] = job
            self._job_ids[id(job)] = number
        self._send_quietly(wire.Embed(number, job.inputs))

    def cancel_embedding(self, job: EmbeddingJob) -> None:
        job.cancelled = True
        with self._lock:
            number = self._job_ids.pop(id(job), None)
            if number is not None:
                self._jobs.pop(number, None)
        if number is not None:
            self._send_quietly(wire.CancelEmbed(number))

    # -- adapters (block until the engine process answers: call from a worker thread) ----
    def add_adapter(self, name: str, uri: str, path: Path) -> tuple[AdapterInfo, int]:
        info, nbytes = self._call(lambda token: wire.AddAdapter(token, name, uri, str(path)))
        with self._lock:
            self._adapters[name] = info
        return info, int(nbytes)

    def remove_adapter(self, name: str) -> bool:
        removed = bool(self._call(lambda token: wire.RemoveAdapter(token, name)))
        with self._lock:
            self._adapters.pop(name, None)
        return removed

    def adapter_info(self, name: str) -> AdapterInfo | None:
        with self._lock:
            return self._adapters.get(name)

    def adapter_list(self) -> list[AdapterInfo]:
        with self._lock:
            return list(self._adapters.values())

    # -- readings --------------------------------------------------------------------------
    def gauges(self) -> dict[str, float]:
        with self._lock:
            readings = dict(self._gauges)
            readings["num_requests_waiting"] = float(len(self._queued))
        readings["engine_alive"] = float(self.alive)
        return readings

    def prefix_readings(self) -> PrefixCacheReadings | None:
        return self._prefix

    # -- the pipe --------------------------------------------------------------------------
    def _send(self, message: Any) -> None:
        with self._send_lock:
            self._conn.send(message)

    def _send_quietly(self, message: Any) -> None:
        """Send; if the pipe is broken the reader is failing everything open already."""
        try:
            self._send(message)
        except OSError:
            log.debug("engine process pipe closed; %s not sent", type(message).__name__)

    def _call(self, make: Any) -> Any:
        reply: Future[Any] = Future()
        with self._lock:
            if not self.alive:
                raise EngineDead(self._dead_message())
            token = next(self._numbers)
            self._replies[token] = reply
        self._send_quietly(make(token))
        return reply.result()

    def _read(self) -> None:
        """Reader thread: deliver every message until the engine process goes away."""
        try:
            while True:
                self._dispatch(self._conn.recv())
        except (EOFError, OSError):
            pass
        except Exception as exc:  # a message we cannot read: nothing after it is reliable
            log.exception("engine process message could not be handled")
            self.error = EngineProcessError(f"engine process message unreadable: {exc!r}")
        _wait_exit(self._process, 5.0)
        if self.error is None and not self._closed:
            code = self._process.exitcode
            self.error = EngineProcessError(
                f"the engine process exited unexpectedly (exit code {code})"
            )
        self._fail_open(self._dead_message())

    def _dispatch(self, message: Any) -> None:
        if isinstance(message, wire.Outputs):
            self._deliver(message)
        elif isinstance(message, wire.Reply):
            with self._lock:
                reply = self._replies.pop(message.token, None)
            if reply is None:
                return
            if message.error is None:
                reply.set_result(message.value)
            else:
                kind, text = message.error
                reply.set_exception(
                    AdapterError(text) if kind == "AdapterError" else RuntimeError(text)
                )
        elif isinstance(message, wire.Dead):
            log.error("engine process reports its loop died: %s", message.failure)
            self.error = EngineProcessError(message.failure)

    def _deliver(self, batch: wire.Outputs) -> None:
        deliveries: list[tuple[Sequence, StepOutput]] = []
        embedded: list[tuple[EmbeddingJob, Any, str | None]] = []
        with self._lock:
            self._queued.difference_update(batch.dequeued)
            for seq_id, out in batch.outputs:
                seq = self._open.get(seq_id)
                if seq is None:
                    continue  # aborted here meanwhile
                if out.finished:
                    del self._open[seq_id]
                    self._queued.discard(seq_id)
                seq.reused = max(seq.reused, out.cached_tokens)
                deliveries.append((seq, out))
            for number, vectors, why in batch.embedded:
                job = self._jobs.pop(number, None)
                if job is not None:
                    self._job_ids.pop(id(job), None)
                    embedded.append((job, vectors, why))
            self._gauges = batch.gauges
            self._prefix = batch.prefix
        for seq, out in deliveries:
            try:
                seq.emit(out)
            except Exception:
                log.exception("consumer of request %d failed", seq.id)
        for job, vectors, why in embedded:
            tensor = None if vectors is None else torch.from_numpy(vectors)
            try:
                job.deliver(tensor, why)
            except Exception:
                log.exception("embedding consumer failed")
        stats = self.stats
        if stats is not None:
            for method, args in batch.stats:
                try:
                    getattr(stats, method)(*args)
                except Exception:
                    log.exception("stats observer failed")

    def _fail_open(self, reason: str) -> None:
        """Error every request, job and call still waiting on the engine process."""
        with self._lock:
            self._closed = True
            victims = list(self._open.values())
            jobs = list(self._jobs.values())
            replies = list(self._replies.values())
            self._open.clear()
            self._queued.clear()
            self._jobs.clear()
            self._job_ids.clear()
            self._replies.clear()
        fail_sequences(victims, reason)
        for job in jobs:
            try:
                job.deliver(None, reason)
            except Exception:
                log.exception("embedding consumer failed")
        for reply in replies:
            reply.set_exception(EngineDead(reason))

    def _dead_message(self) -> str:
        failure = self.failure
        return f"engine failed: {failure}" if failure else "engine is not running"


def _wait_exit(process: BaseProcess, timeout: float) -> bool:
    """Wait until ``process`` has exited and been reaped; True if it has. (One ``join``
    can return early: its sentinel closes while the process exits, before it can be
    reaped.)"""
    deadline = time.monotonic() + timeout
    while process.is_alive():
        if time.monotonic() > deadline:
            return False
        process.join(0.05)
    return True


def start_engine_process(settings: ServerSettings) -> tuple[EngineClient, str]:
    """Start the engine process, wait until its model is loaded, and return a started
    client and the local model directory. Raises RuntimeError with the engine process's
    reason if it could not load the model."""
    context = multiprocessing.get_context("spawn")  # never fork a process with threads
    conn, child_conn = context.Pipe(duplex=True)
    level = logging.getLogger().getEffectiveLevel()
    process = context.Process(
        target=child.main,
        args=(child_conn, settings, level),
        name="hearth-engine",
        daemon=True,
    )
    started = time.monotonic()
    process.start()
    child_conn.close()  # only the engine process holds its end: EOF here when it dies
    try:
        first = conn.recv()
    except (EOFError, OSError):
        _wait_exit(process, 5.0)
        conn.close()
        raise RuntimeError(
            f"the engine process exited while loading the model (exit code {process.exitcode})"
        ) from None
    if isinstance(first, wire.StartFailed):
        _wait_exit(process, _STOP_TIMEOUT_S)
        conn.close()
        raise RuntimeError(first.reason)
    assert isinstance(first, wire.Ready), type(first)
    client = EngineClient(process, conn, first)
    client.start()
    log.info("engine process %d ready in %.1fs", process.pid or 0, time.monotonic() - started)
    return client, first.model_root
