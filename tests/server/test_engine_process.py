"""The engine in its own process (engine_process/): the server process's ``EngineClient``
gives the same outputs as an engine thread, counts the queue, aborts, loads adapters,
embeds, and fails every request it holds, saying why, when the engine process dies or
its loop crashes; an engine process whose server process dies stops too."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch

from hearth_server.config import ServerSettings
from hearth_server.engine.embeddings import EmbeddingJob
from hearth_server.engine.engine import CRASH_ENV, Engine, EngineDead, EngineOverloaded
from hearth_server.engine.lora import AdapterError
from hearth_server.engine.params import ParamError, SamplingParams
from hearth_server.engine_process.client import EngineClient, start_engine_process
from tests.server.conftest import generate, submit
from tests.server.processes import start_server, stop, wait_healthy
from tests.server.test_engine import PROMPTS, _ids, wait_until


def greedy(n: int) -> SamplingParams:
    return SamplingParams(max_tokens=n, temperature=0.0, ignore_eos=True)


def tiny_settings(tiny_dir: Path, **overrides: Any) -> ServerSettings:
    base: dict[str, Any] = {
        "max_model_len": 128,
        "max_num_seqs": 8,
        "max_loras": 2,
        "max_cpu_loras": 2,
        "prefix_cache_tokens": 0,
    }
    return ServerSettings(model=str(tiny_dir), **{**base, **overrides})


@pytest.fixture(scope="module")
def client(tiny_dir: Path) -> Iterator[EngineClient]:
    started, _ = start_engine_process(tiny_settings(tiny_dir))
    yield started
    started.shutdown()


@pytest.fixture(scope="module")
def narrow(tiny_dir: Path) -> Iterator[EngineClient]:
    """One sequence at a time, one waiting place."""
    started, _ = start_engine_process(tiny_settings(tiny_dir, max_num_seqs=1, max_waiting=1))
    yield started
    started.shutdown()


def _load_adapters(engine: Engine | EngineClient, adapters: dict[str, Path]) -> None:
    for name, path in adapters.items():
        if engine.adapter_info(name) is None:
            engine.add_adapter(name, str(path), path)


def test_outputs_match_an_engine_thread_token_for_token(
    client: EngineClient, make_engine: Any, tiny_adapters: dict[str, Path]
) -> None:
    thread: Engine = make_engine()
    _load_adapters(thread, tiny_adapters)
    _load_adapters(client, tiny_adapters)
    prompts = [_ids(client.tokenizer, p) for p in PROMPTS]
    adapters = [None, "alpha", "beta", None]
    sampled = SamplingParams(max_tokens=12, temperature=0.9, seed=7, logprobs=2)
    for params in (greedy(12), sampled):
        want = generate(thread, prompts, params, adapters)
        got = generate(client, prompts, params, adapters)
        for w, g in zip(want, got, strict=True):
            assert g.tokens == w.tokens and g.text == w.text
            assert g.final.finish_reason == w.final.finish_reason == "length"
            for got_step, want_step in zip(g.outputs, w.outputs, strict=True):
                # Same token choices; float sums may differ in the last bit across processes.
                assert [(lp.token_id, [t for t, _ in lp.top]) for lp in got_step.logprobs] == [
                    (lp.token_id, [t for t, _ in lp.top]) for lp in want_step.logprobs
                ]
                for got_lp, want_lp in zip(got_step.logprobs, want_step.logprobs, strict=True):
                    assert got_lp.logprob == pytest.approx(want_lp.logprob, abs=1e-5)


def test_a_bad_request_is_refused_before_it_crosses(client: EngineClient) -> None:
    with pytest.raises(ParamError) as refused:
        submit(client, [client.vocab_size + 5], greedy(4))
    assert refused.value.param == "prompt"
    # ...and the engine process still serves.
    col = generate(client, [[5, 6, 7]], greedy(3))[0]
    assert len(col.tokens) == 3


def test_abort_frees_the_slot_and_the_queue_place(narrow: EngineClient) -> None:
    first, _ = submit(narrow, [5, 6, 7], SamplingParams(max_tokens=100, ignore_eos=True))
    wait_until(lambda: narrow.gauges()["num_requests_waiting"] == 0, "the first is admitted")
    second, stuck = submit(narrow, [8, 9], greedy(2))
    # One place in the queue, taken: the next one is refused here, without crossing.
    with pytest.raises(EngineOverloaded):
        submit(narrow, [10], greedy(2))
    narrow.abort(second)  # gives its place back at once
    third, done = submit(narrow, [10], greedy(2))
    narrow.abort(first)  # frees the only slot: the third runs
    assert done.done.wait(30) and done.final.finish_reason == "length"
    assert not stuck.outputs  # the aborted waiting request never ran
    wait_until(lambda: narrow.gauges()["num_requests_running"] == 0, "the slot is free")
    assert narrow.gauges()["num_requests_waiting"] == 0
    del third


def test_adapters_load_serve_and_unload(
    narrow: EngineClient, tiny_adapters: dict[str, Path]
) -> None:
    info, nbytes = narrow.add_adapter("alpha", "file://alpha", tiny_adapters["alpha"])
    assert info.rank == 8 and nbytes > 0
    assert narrow.adapter_info("alpha") == info
    assert [a.name for a in narrow.adapter_list()] == ["alpha"]
    wait_until(lambda: narrow.gauges()["lora_adapters_loaded"] == 1, "the gauge counts it")
    col = generate(narrow, [[5, 6, 7]], greedy(3), ["alpha"])[0]
    assert col.final.finish_reason == "length"
    with pytest.raises(AdapterError):
        narrow.add_adapter("broken", "file://nowhere", Path("/nonexistent"))
    assert narrow.remove_adapter("alpha") is True
    assert narrow.remove_adapter("alpha") is False
    assert narrow.adapter_info("alpha") is None
    col = generate(narrow, [[5, 6, 7]], greedy(3), ["alpha"])[0]
    assert col.final.finish_reason == "error" and "unloaded" in (col.final.error or "")


def test_embeddings_match_an_engine_thread(client: EngineClient, make_engine: Any) -> None:
    thread: Engine = make_engine()
    inputs = [[5, 6, 7, 8], [9, 10]]

    def embed(engine: Engine | EngineClient) -> torch.Tensor:
        got: list[Any] = []
        done = threading.Event()

        def deliver(vectors: torch.Tensor | None, why: str | None) -> None:
            got.append(vectors if vectors is not None else why)
            done.set()

        engine.submit_embedding(EmbeddingJob(inputs, deliver))
        assert done.wait(30)
        assert isinstance(got[0], torch.Tensor), got
        return got[0]

    assert torch.allclose(embed(client), embed(thread), atol=1e-6)
    assert client.hidden_size == thread.hidden_size


def test_a_crashed_engine_loop_fails_every_request_and_says_why(
    tiny_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CRASH_ENV, "3")  # the engine process inherits it
    crashing, _ = start_engine_process(tiny_settings(tiny_dir))
    try:
        # Every gauge is there before the first request (the autoscaler reads them).
        assert set(crashing.gauges()) == {
            "num_requests_running",
            "num_requests_waiting",
            "kv_cache_usage_perc",
            "lora_adapters_loaded",
            "lora_adapters_active",
            "engine_alive",
        }
        assert crashing.gauges()["num_requests_running"] == 0.0
        cols = [submit(crashing, [5, 6, 7], greedy(20))[1] for _ in range(3)]
        for col in cols:
            assert col.done.wait(30)
            assert col.final.finish_reason == "error"
            assert "InjectedEngineFault" in (col.final.error or "")
        wait_until(lambda: crashing.error is not None, "the client knows")
        assert not crashing.alive
        assert (
            crashing.failure
            == f"InjectedEngineFault: injected engine failure after 3 steps ({CRASH_ENV})"
        )
        with pytest.raises(EngineDead, match="InjectedEngineFault"):
            submit(crashing, [5], greedy(2))
    finally:
        crashing.shutdown()


def test_a_killed_engine_process_fails_every_request_and_refuses_more(tiny_dir: Path) -> None:
    victim, _ = start_engine_process(tiny_settings(tiny_dir))
    try:
        _, col = submit(victim, [5, 6, 7], SamplingParams(max_tokens=120, ignore_eos=True))
        wait_until(lambda: bool(col.outputs), "the request is running")
        assert victim.pid is not None
        os.kill(victim.pid, signal.SIGKILL)
        assert col.done.wait(30)
        assert col.final.finish_reason == "error"
        assert "exited unexpectedly (exit code -9)" in (col.final.error or "")
        assert not victim.alive
        with pytest.raises(EngineDead, match="exit code -9"):
            submit(victim, [5], greedy(2))
        with pytest.raises(EngineDead):
            victim.add_adapter("late", "file://late", tiny_dir)
    finally:
        victim.shutdown()


def test_startup_failure_names_the_reason() -> None:
    with pytest.raises(RuntimeError, match="nonexistent"):
        start_engine_process(ServerSettings(model="/nonexistent/model"))


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(x) for x in (task / "children").read_text().split()]
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


@pytest.mark.slow
def test_the_server_relays_metrics_and_its_engine_process_dies_with_it(
    tiny_dir: Path, tmp_path: Path
) -> None:
    log = tmp_path / "server.log"
    proc, url = start_server(log, "--max-model-len", "128", "--threads", "1", model=str(tiny_dir))
    try:
        wait_healthy(proc, url, log, within=120)
        engines = [p for p in _children(proc.pid) if _alive(p)]
        body = {"model": str(tiny_dir), "prompt": "Hello", "max_tokens": 5, "ignore_eos": True}
        answer = httpx.post(f"{url}/v1/completions", json=body, timeout=60)
        assert answer.status_code == 200, answer.text
        metrics = httpx.get(f"{url}/metrics", timeout=10).text
        # Stats observed in the engine process, replayed on the server's registry.
        assert f'hearth:generation_tokens_total{{model_name="{tiny_dir}"}} 5.0' in metrics
        assert "hearth:time_to_first_token_seconds_count" in metrics
        assert f'hearth:num_requests_running{{model_name="{tiny_dir}"}} 0.0' in metrics
        # The engine process sets its own kernels' threads, and says so.
        assert "torch uses 1 CPU threads (--threads)" in log.read_text()
        proc.send_signal(signal.SIGKILL)  # no shutdown: the pipe just closes
        proc.wait(10)
        deadline = time.monotonic() + 30
        while any(_alive(p) for p in engines) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert engines and not any(_alive(p) for p in engines), log.read_text()
    finally:
        stop(proc)
