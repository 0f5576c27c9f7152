"""The background-loop helper behind the emulator, the kubelet and the kopf runner."""

from __future__ import annotations

import asyncio
import threading

import pytest

from tests.harness.background import BackgroundLoop

pytestmark = pytest.mark.timeout(30)


def test_serves_until_stopped_and_runs_calls_on_its_loop() -> None:
    seen: list[str] = []

    async def main() -> None:
        seen.append("started")
        runner.ready.set()
        await runner.stop_requested.wait()
        seen.append("stopped")

    runner = BackgroundLoop("demo", main)
    runner.start()
    assert runner.running and seen == ["started"]
    assert runner.call(threading.current_thread).name == "demo"
    assert runner.run_coroutine(asyncio.sleep(0, result=7)) == 7
    runner.stop()
    assert not runner.running and seen == ["started", "stopped"]
    runner.stop()  # stopping twice is harmless


def test_a_failure_before_ready_is_raised_by_start() -> None:
    async def main() -> None:
        raise OSError("port taken")

    runner = BackgroundLoop("demo", main)
    with pytest.raises(RuntimeError, match="demo failed to start") as failed:
        runner.start()
    assert isinstance(failed.value.__cause__, OSError)
    assert not runner.running


def test_never_ready_is_an_error_and_is_stopped() -> None:
    async def main() -> None:
        await runner.stop_requested.wait()

    runner = BackgroundLoop("demo", main, ready_timeout=0.1)
    with pytest.raises(RuntimeError, match="did not become ready"):
        runner.start()
    assert not runner.running


def test_a_thread_that_ignores_stop_is_reported() -> None:
    release = asyncio.Event()

    async def main() -> None:
        runner.ready.set()
        await release.wait()  # ignores stop_requested

    runner = BackgroundLoop("demo", main, stop_timeout=0.1)
    runner.start()
    thread = next(t for t in threading.enumerate() if t.name == "demo")
    with pytest.raises(RuntimeError, match="did not stop"):
        runner.stop()
    assert runner.loop is not None
    runner.loop.call_soon_threadsafe(release.set)
    thread.join(10)
    assert not thread.is_alive()
