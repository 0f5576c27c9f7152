"""What one constrained request costs a batch: SmolLM2, 16 rows, 0 vs 1 constrained row.

    python bench/bench_structured.py [--quick] [--device cuda]

The engine runs in this process (no HTTP: the cost measured is the engine's). Each run
submits 16 greedy requests at once and waits for all of them; every row produces exactly
OUT_TOKENS tokens (free rows ignore EOS; the constrained row writes a JSON string whose
minLength keeps it going past OUT_TOKENS), so the runs do the same model work and differ
only by the grammar. Peers, interleaved per repetition (A/B/C, B/C/A, ...: background load
hits all alike and no peer always runs first):

  * free_x16:        16 unconstrained rows (the baseline);
  * one_json_x16:    15 unconstrained rows + 1 json_schema row (the target: <= 10% cost);
  * all_json_x16:    16 json_schema rows (for scale: every row pays the mask).

Prints tokens per wall second and per CPU second of this process, the median ratio to the
baseline per repetition, and the grammar's own time per masked token; writes JSON to
bench/results/. Not a test.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from hearth_server.engine.engine import Engine, EngineConfig, Sequence
from hearth_server.engine.params import SamplingParams, StepOutput
from hearth_server.engine.structured import Constraint, StructuredSpec

ROOT = Path(__file__).resolve().parent
MODEL_URI = "builtin://smollm2-135m-instruct"
PROMPT = [{"role": "user", "content": "Write a short story about a robot who learns to paint."}]
BATCH = 16
OUT_TOKENS = 64
SCHEMA = {
    "type": "object",
    "properties": {
        "title": {"type": "string", "maxLength": 40},
        # Longer than OUT_TOKENS tokens can spell: the row always runs to max_tokens.
        "story": {"type": "string", "minLength": 2000},
        "mood": {"enum": ["happy", "sad"]},
    },
    "required": ["title", "story", "mood"],
}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def load_engine(device: str) -> tuple[Engine, list[int]]:
    from hearth_server.models import resolve_model
    from hearth_server.models.loading import load_model

    model, tok, seconds = load_model(resolve_model(MODEL_URI).path, device=device)
    log(f"loaded SmolLM2 on {device} in {seconds:.1f}s")
    engine = Engine(model, tok, EngineConfig(max_num_seqs=BATCH, max_model_len=512))
    engine.start()
    ids = list(tok.apply_chat_template(PROMPT, add_generation_prompt=True))
    return engine, ids


class Timed:
    """Wraps the grammar calls of a constrained row (``mask``: compute the allowed tokens
    and mask the logits; ``advance``: feed the sampled token) to add up their time."""

    seconds = 0.0
    masks = 0

    @classmethod
    def install(cls) -> None:
        for name in ("mask", "advance"):
            original = getattr(Constraint, name)

            def timed(self: Constraint, *args: Any, _f: Any = original, _n: str = name) -> Any:
                start = time.perf_counter()
                try:
                    return _f(self, *args)
                finally:
                    cls.seconds += time.perf_counter() - start
                    cls.masks += _n == "mask"

            setattr(Constraint, name, timed)


def run_batch(engine: Engine, ids: list[int], constrained: int) -> dict[str, float]:
    spec = StructuredSpec("json_schema", schema=SCHEMA)
    done: list[StepOutput] = []
    seqs = []
    for i in range(BATCH):
        structured = spec if i < constrained else None
        params = SamplingParams(
            max_tokens=OUT_TOKENS, temperature=0.0, ignore_eos=True, structured=structured
        )
        seqs.append(Sequence(ids, params, lambda out: done.append(out) if out.finished else None))
    start, cpu = time.perf_counter(), time.process_time()
    for seq in seqs:
        engine.submit(seq)
    while len(done) < BATCH:
        time.sleep(0.001)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    tokens = sum(out.completion_tokens for out in done)
    assert all(out.finish_reason == "length" for out in done), [o.finish_reason for o in done]
    assert tokens == BATCH * OUT_TOKENS, tokens
    return {"tok_s": tokens / wall, "tok_cpu_s": tokens / cpu, "wall_s": wall}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="3 repetitions instead of 7")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    reps = 3 if args.quick else 7
    engine, ids = load_engine(args.device)
    Timed.install()
    peers = {"free_x16": 0, "one_json_x16": 1, "all_json_x16": BATCH}
    try:
        for constrained in peers.values():  # warm-up: grammar compiled, caches grown
            run_batch(engine, ids, constrained)
        runs: dict[str, list[dict[str, float]]] = {k: [] for k in peers}
        grammar_s = {k: 0.0 for k in peers}
        masks = {k: 0 for k in peers}
        for rep in range(reps):
            names = list(peers)
            for name in names[rep % 3 :] + names[: rep % 3]:  # rotate: no peer always first
                constrained = peers[name]
                before_s, before_n = Timed.seconds, Timed.masks
                runs[name].append(run_batch(engine, ids, constrained))
                grammar_s[name] += Timed.seconds - before_s
                masks[name] += Timed.masks - before_n
            log(
                "rep {}: {}".format(
                    rep, ", ".join(f"{k} {v[-1]['tok_s']:.1f} tok/s" for k, v in runs.items())
                )
            )
    finally:
        engine.shutdown()
    report(runs, grammar_s, masks, args)


def report(
    runs: dict[str, list[dict[str, float]]],
    grammar_s: dict[str, float],
    masks: dict[str, int],
    args: argparse.Namespace,
) -> None:
    base = runs["free_x16"]
    result: dict[str, Any] = {"device": args.device, "batch": BATCH, "out_tokens": OUT_TOKENS}
    print(f"\nSmolLM2, batch {BATCH}, {OUT_TOKENS} tokens per row, device {args.device}")
    print(f"{'peer':<14} {'tok/s':>8} {'tok/cpu-s':>10} {'ratio':>7} {'cpu ratio':>10}")
    for name, rows in runs.items():
        ratio = statistics.median(r["tok_s"] / b["tok_s"] for r, b in zip(rows, base, strict=True))
        cpu_ratio = statistics.median(
            r["tok_cpu_s"] / b["tok_cpu_s"] for r, b in zip(rows, base, strict=True)
        )
        tok_s = statistics.median(r["tok_s"] for r in rows)
        tok_cpu_s = statistics.median(r["tok_cpu_s"] for r in rows)
        per_mask_us = 1e6 * grammar_s[name] / masks[name] if masks[name] else 0.0
        # The grammar runs on the engine thread, in series with the forward pass: its
        # share of the wall time is what it takes from the batch, and is far less noisy
        # on a loaded machine than the difference of two throughputs.
        share = grammar_s[name] / sum(r["wall_s"] for r in rows)
        result[name] = {
            "tok_s": tok_s,
            "tok_cpu_s": tok_cpu_s,
            "ratio_to_free": ratio,
            "cpu_ratio_to_free": cpu_ratio,
            "grammar_us_per_masked_token": per_mask_us,
            "grammar_share_of_wall": share,
        }
        print(f"{name:<14} {tok_s:>8.1f} {tok_cpu_s:>10.1f} {ratio:>7.3f} {cpu_ratio:>10.3f}")
    for name in ("one_json_x16", "all_json_x16"):
        r = result[name]
        print(
            f"{name}: grammar {r['grammar_us_per_masked_token']:.0f} us per masked token "
            f"(mask + advance), {100 * r['grammar_share_of_wall']:.2f}% of the wall time"
        )
    cost = 1 - result["one_json_x16"]["ratio_to_free"]
    cpu_cost = 1 - result["one_json_x16"]["cpu_ratio_to_free"]
    print(
        f"cost of one constrained row: {100 * cost:.1f}% of batch throughput by wall time, "
        f"{100 * cpu_cost:.1f}% by CPU time (target <= 10%)"
    )
    out = ROOT / "results" / f"structured-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
