"""Time to first token with a repeated ~2,000-token system prompt: prefix cache on vs off.

    python bench/bench_prefix_cache.py [--quick] [--device cuda]

SmolLM2 runs in this process in two engines, one with the prefix cache and one without
(no HTTP: what differs is the engine's prefill). Every repetition asks a new question
under the same system prompt, greedy, one request at a time. Peers, interleaved per
repetition (A/B/C, so background load hits all alike):

  * off:       no prefix cache: the whole prompt is prefilled (the baseline);
  * on_hit:    the cache holds the system prompt (the target: >= 5x faster than off);
  * on_miss:   the cache is on but the system prompt is new each time (what storing a
               prompt's blocks costs a request that finds nothing).

Prints the median TTFT of each peer and the median per-repetition ratio to ``off``;
writes JSON to bench/results/. Not a test.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

from hearth_server.engine.engine import Engine, EngineConfig, Sequence
from hearth_server.engine.params import SamplingParams, StepOutput

ROOT = Path(__file__).resolve().parent
MODEL_URI = "builtin://smollm2-135m-instruct"
SYSTEM_TOKENS = 2000
CITIES = ["Paris", "Rome", "Madrid", "Berlin", "Vienna", "Lisbon", "Prague", "Oslo"]


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def handbook(tok: Any, company: str) -> str:
    """A varied system prompt of about SYSTEM_TOKENS tokens."""
    lines = [f"You are the support assistant of {company}. Follow the handbook below."]
    i = 0
    while len(tok("\n".join(lines))["input_ids"]) < SYSTEM_TOKENS:
        lines.append(
            f"Rule {i + 1}: when a customer asks about order {1000 + 37 * i}, say that it "
            f"ships from the {CITIES[i % len(CITIES)]} warehouse within {i % 5 + 1} days."
        )
        i += 1
    return "\n".join(lines)


def load_engines(device: str) -> tuple[Engine, Engine, Any]:
    from hearth_server.models import resolve_model
    from hearth_server.models.loading import load_model

    engines = []
    for cache_tokens in (0, 16384):
        model, tok, seconds = load_model(resolve_model(MODEL_URI).path, device=device)
        log(f"loaded SmolLM2 on {device} in {seconds:.1f}s (prefix cache {cache_tokens})")
        config = EngineConfig(max_model_len=4096, prefix_cache_tokens=cache_tokens)
        engine = Engine(model, tok, config)
        engine.start()
        engines.append(engine)
    return engines[0], engines[1], tok


def ttft(engine: Engine, ids: list[int]) -> tuple[float, float, int, int]:
    """Seconds to the first token (wall, and CPU of this process: the other engine is
    idle, so that is this request's), the token, and the prompt tokens from the cache."""
    first = threading.Event()
    seen: list[StepOutput] = []

    def emit(out: StepOutput) -> None:
        seen.append(out)
        if out.token_ids or out.finished:
            first.set()

    params = SamplingParams(max_tokens=1, temperature=0.0)
    start, cpu = time.perf_counter(), time.process_time()
    engine.submit(Sequence(ids, params, emit))
    if not first.wait(600):
        raise RuntimeError("no first token within 600 s")
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    out = seen[0]
    if not out.token_ids:
        raise RuntimeError(f"request failed: {out.error}")
    return seconds, cpu, out.token_ids[0], out.cached_tokens


def prompt(tok: Any, system: str, rep: int) -> list[int]:
    question = f"Where does order {1000 + 37 * rep} ship from, and when will it arrive?"
    messages = [{"role": "system", "content": system}, {"role": "user", "content": question}]
    return list(tok.apply_chat_template(messages, add_generation_prompt=True))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="3 repetitions instead of 9")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    reps = 3 if args.quick else 9
    off, on, tok = load_engines(args.device)
    system = handbook(tok, "Acme Parcels")
    runs: dict[str, list[tuple[float, float]]] = {"off": [], "on_hit": [], "on_miss": []}
    reused: list[int] = []
    try:
        warm = prompt(tok, system, -1)
        for engine in (off, on):  # warm-up: caches grown; `on` now holds the system prompt
            ttft(engine, warm)
        log(f"prompt: {len(warm)} tokens")
        for rep in range(reps):
            ids = prompt(tok, system, rep)
            fresh = prompt(tok, handbook(tok, f"Company {rep}"), rep)
            wall, cpu, tok_off, _ = ttft(off, ids)
            runs["off"].append((wall, cpu))
            wall, cpu, tok_on, cached = ttft(on, ids)
            runs["on_hit"].append((wall, cpu))
            reused.append(cached)
            if tok_on != tok_off:
                raise RuntimeError(f"rep {rep}: first token {tok_on} with the cache, {tok_off} off")
            wall, cpu, _, _ = ttft(on, fresh)
            runs["on_miss"].append((wall, cpu))
            log(f"rep {rep}: " + ", ".join(f"{k} {v[-1][0] * 1e3:.0f} ms" for k, v in runs.items()))
    finally:
        off.shutdown()
        on.shutdown()
    report(runs, reused, len(warm), args)


def report(
    runs: dict[str, list[tuple[float, float]]],
    reused: list[int],
    prompt_tokens: int,
    args: argparse.Namespace,
) -> None:
    base = runs["off"]
    result: dict[str, Any] = {
        "device": args.device,
        "prompt_tokens": prompt_tokens,
        "cached_tokens": statistics.median(reused),
    }
    print(
        f"\nSmolLM2, {prompt_tokens}-token prompt (system ~{SYSTEM_TOKENS}), device {args.device}"
    )
    print(f"cached tokens on a hit: {statistics.median(reused):.0f}")
    print(f"{'peer':<9} {'TTFT ms':>9} {'speedup':>8} {'CPU ms':>9} {'CPU speedup':>12}")
    for name, rows in runs.items():
        speedup = statistics.median(b[0] / r[0] for r, b in zip(rows, base, strict=True))
        cpu_speedup = statistics.median(b[1] / r[1] for r, b in zip(rows, base, strict=True))
        ms = 1e3 * statistics.median(r[0] for r in rows)
        cpu_ms = 1e3 * statistics.median(r[1] for r in rows)
        result[name] = {
            "ttft_ms": ms,
            "speedup_vs_off": speedup,
            "cpu_ms": cpu_ms,
            "cpu_speedup_vs_off": cpu_speedup,
        }
        print(f"{name:<9} {ms:>9.1f} {speedup:>7.2f}x {cpu_ms:>9.1f} {cpu_speedup:>11.2f}x")
    print(
        f"prefix cache hit: {result['on_hit']['speedup_vs_off']:.1f}x faster first token "
        "(target >= 5x)"
    )
    out = ROOT / "results" / f"prefix-cache-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
