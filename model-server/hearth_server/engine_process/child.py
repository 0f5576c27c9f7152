"""The engine process: loads the model, runs ``Engine`` and relays it over the pipe.

Its main thread runs the engine loop and, after every iteration, sends what that
iteration produced as one ``Outputs`` message (tokens of every row, stats, gauges);
a second thread reads commands. It ignores SIGINT and SIGTERM: the server process decides
when it stops (a ``Shutdown``, or the pipe closing because the server process died).
"""

from __future__ import annotations

import functools
import logging
import signal
import threading
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import torch

from hearth_server.config import ServerSettings
from hearth_server.engine.embeddings import EmbeddingJob
from hearth_server.engine.engine import Engine, Sequence
from hearth_server.engine.params import StepOutput
from hearth_server.engine_process import wire

log = logging.getLogger("hearth_server.engine_process")


class EngineHost:
    """Buffers the engine's outputs between flushes and answers commands."""

    def __init__(self, conn: Connection, engine: Engine) -> None:
        self.conn = conn
        self.engine = engine
        self._lock = threading.Lock()  # the buffer, and the order of sends
        self._batch = wire.Outputs()
        self.seqs: dict[int, Sequence] = {}  # submitted, not finished (for aborts)
        self.jobs: dict[int, EmbeddingJob] = {}
        engine.stats = self  # records the StatsObserver calls for the server's metrics
        engine.on_iteration = self.flush
        engine.on_dequeue = self._dequeued
        engine.on_failure = self._failed

    # -- StatsObserver, replayed on the server's metrics ---------------------------------
    def on_first_token(self, seconds: float, adapter: str | None) -> None:
        self._record("on_first_token", seconds, adapter)

    def on_token_latency(self, seconds: float) -> None:
        self._record("on_token_latency", seconds)

    def on_finished(self, prompt_tokens: int, generation_tokens: int, reason: str) -> None:
        self._record("on_finished", prompt_tokens, generation_tokens, reason)

    def _record(self, method: str, *args: Any) -> None:
        with self._lock:
            self._batch.stats.append((method, args))

    # -- engine loop (main thread) ------------------------------------------------------
    def _emit(self, seq_id: int, out: StepOutput) -> None:
        with self._lock:
            self._batch.outputs.append((seq_id, out))
            if out.finished:
                self.seqs.pop(seq_id, None)

    def _dequeued(self, seq_id: int) -> None:
        with self._lock:
            self._batch.dequeued.append(seq_id)

    def _embedded(self, job_id: int, vectors: torch.Tensor | None, why: str | None) -> None:
        array = None if vectors is None else vectors.numpy()
        with self._lock:
            self.jobs.pop(job_id, None)
            self._batch.embedded.append((job_id, array, why))

    def flush(self, force: bool = False) -> None:
        """Send what was buffered since the last flush, with fresh gauges."""
        with self._lock:
            batch = self._batch
            if not batch and not force:
                return
            self._batch = wire.Outputs()
            batch.gauges = self.engine.gauges()
            batch.prefix = self.engine.prefix_readings()
            self.conn.send(batch)

    def _failed(self, failure: str) -> None:
        self.flush()
        with self._lock:
            self.conn.send(wire.Dead(failure))

    # -- command thread ---------------------------------------------------------------
    def serve(self) -> None:
        """Handle commands until ``Shutdown`` or until the server process is gone, then
        stop the engine loop (which ends the process)."""
        while True:
            try:
                cmd = self.conn.recv()
            except (EOFError, OSError):
                log.info("the server process is gone; stopping the engine")
                break
            if isinstance(cmd, wire.Shutdown):
                break
            self.handle(cmd)
        self.engine.stop()

    def handle(self, cmd: Any) -> None:
        if isinstance(cmd, wire.Submit):
            self._submit(cmd)
        elif isinstance(cmd, wire.Abort):
            with self._lock:
                seq = self.seqs.pop(cmd.id, None)
            if seq is not None:
                self.engine.abort(seq)
        elif isinstance(cmd, wire.Embed):
            job = EmbeddingJob(cmd.inputs, functools.partial(self._embedded, cmd.id))
            with self._lock:
                self.jobs[cmd.id] = job
            try:
                self.engine.submit_embedding(job)
            except Exception as exc:
                self._embedded(cmd.id, None, str(exc))
                self.flush()
        elif isinstance(cmd, wire.CancelEmbed):
            with self._lock:
                cancelled = self.jobs.pop(cmd.id, None)
            if cancelled is not None:
                self.engine.cancel_embedding(cancelled)
        elif isinstance(cmd, (wire.AddAdapter, wire.RemoveAdapter)):
            # Reading an adapter takes a while: never hold up the submits behind it.
            threading.Thread(target=self._adapter, args=(cmd,), daemon=True).start()
        else:
            log.error("unknown command %r", type(cmd).__name__)

    def _submit(self, cmd: wire.Submit) -> None:
        seq = Sequence(
            cmd.prompt_ids,
            cmd.params,
            functools.partial(self._emit, cmd.id),
            adapter=cmd.adapter,
            id=cmd.id,
            arrival=cmd.arrival,
        )
        with self._lock:
            self.seqs[cmd.id] = seq
        try:
            self.engine.submit(seq)
        except Exception as exc:  # the server checked it; e.g. the engine died meanwhile
            self._dequeued(cmd.id)
            self._emit(cmd.id, StepOutput(finished=True, finish_reason="error", error=str(exc)))
            self.flush()

    def _adapter(self, cmd: wire.AddAdapter | wire.RemoveAdapter) -> None:
        try:
            if isinstance(cmd, wire.AddAdapter):
                value: Any = self.engine.add_adapter(cmd.name, cmd.uri, Path(cmd.path))
            else:
                value = self.engine.remove_adapter(cmd.name)
            reply = wire.Reply(cmd.token, value)
        except Exception as exc:
            reply = wire.Reply(cmd.token, error=(type(exc).__name__, str(exc)))
        self.flush(force=True)  # the gauges count adapters: fresh ones before the reply
        with self._lock:
            self.conn.send(reply)


def main(conn: Connection, settings: ServerSettings, log_level: int) -> None:
    """Entry point of the engine process (``multiprocessing`` spawn target)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(
        level=log_level,
        format="%(asctime)s %(levelname)s %(name)s [engine process]: %(message)s",
    )
    from hearth_server.server import load_engine

    try:
        engine, root = load_engine(settings, start=False)
    except Exception as exc:
        log.exception("startup failed")
        conn.send(wire.StartFailed(str(exc)))
        return
    host = EngineHost(conn, engine)

    def started() -> None:
        conn.send(
            wire.Ready(
                tokenizer=engine.tokenizer,
                config=engine.config,
                vocab_size=engine.vocab_size,
                hidden_size=engine.hidden_size,
                eos_ids=engine.eos_ids,
                model_root=root,
                gauges=engine.gauges(),
                prefix=engine.prefix_readings(),
            )
        )
        threading.Thread(target=host.serve, name="hearth-engine-commands", daemon=True).start()

    engine.run(started)  # on this (main) thread, until the commands end or the loop dies
