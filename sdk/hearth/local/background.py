"""One coroutine on its own event loop in a daemon thread, started and stopped from a test.

The emulated API server, the process kubelet and the kopf runner all serve from a
background thread while the test drives them from its own: each hands its main coroutine
to a :class:`BackgroundLoop`. The coroutine sets :attr:`BackgroundLoop.ready` once it
serves and returns once :attr:`BackgroundLoop.stop_requested` is set.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class BackgroundLoop:
    def __init__(
        self,
        name: str,
        main: Callable[[], Coroutine[Any, Any, None]],
        *,
        ready_timeout: float = 30.0,
        stop_timeout: float = 30.0,
    ) -> None:
        self.name = name
        self.main = main
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        #: Set by the coroutine when it serves (kopf takes it as its ``ready_flag``).
        self.ready = threading.Event()
        #: Set by :meth:`stop` on the loop (kopf takes it as its ``stop_flag``).
        self.stop_requested = asyncio.Event()
        #: What the coroutine raised, if it failed.
        self.error: BaseException | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Run the coroutine; return once it is ready, or raise why it is not."""
        self.ready = threading.Event()
        self.stop_requested = asyncio.Event()
        self.error = None
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()
        became_ready = self.ready.wait(self.ready_timeout)
        if self.error is not None:
            self.stop()
            raise RuntimeError(f"{self.name} failed to start") from self.error
        if not became_ready:
            self.stop()
            raise RuntimeError(f"{self.name} did not become ready in {self.ready_timeout} s")

    def stop(self) -> None:
        """Ask the coroutine to return and wait for its thread; a stuck thread is an error."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        if self.loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already closed
                self.loop.call_soon_threadsafe(self.stop_requested.set)
        thread.join(self.stop_timeout)
        if thread.is_alive():
            raise RuntimeError(f"{self.name} did not stop within {self.stop_timeout} s")

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # raised in the test's thread by start() or the owner
            self.error = exc
        finally:
            self.ready.set()  # a coroutine that failed early must not leave start() waiting

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        await self.main()

    # ----- calling into the loop from the test's thread -----------------------------------------

    def call(self, fn: Callable[[], T], timeout: float = 30.0) -> T:
        """Run ``fn`` on the loop (where the state it touches lives) and return its result."""
        if threading.current_thread() is self._thread:
            return fn()  # already on the loop (e.g. from a request handler): waiting would deadlock
        assert self.loop is not None, f"{self.name} is not running"
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(fn())
            except BaseException as exc:
                future.set_exception(exc)

        self.loop.call_soon_threadsafe(run)
        return future.result(timeout=timeout)

    def run_coroutine(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        assert self.loop is not None, f"{self.name} is not running"
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=timeout)
