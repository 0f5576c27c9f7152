"""Embeddings on SmolLM2: the engine's path against transformers, and what embedding jobs
cost the generations running beside them.

    python bench/bench_embeddings.py [--quick]

The engine runs in this process (no HTTP). Peers, interleaved per repetition so that
background load hits both alike:

  * hf_direct: ``AutoModel`` on the same weights, the same micro-batches (padded, with an
    attention mask), mean pooling + L2 normalisation: the baseline;
  * engine:    the same texts as one job through ``Engine.submit_embedding`` (run on the
    engine thread between steps, micro-batches of --max-num-batched-tokens).

Then the interference: the gaps between a streaming generation's tokens, alone and while
embedding jobs keep arriving (their micro-batches run between the generation's steps).
Prints texts per second, the median ratio engine / hf_direct, and the token-gap medians
and maxima; writes JSON to bench/results/. Not a test.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import torch

from hearth_server.engine.embeddings import EmbeddingJob, mean_pool, next_batch
from hearth_server.engine.engine import Engine, EngineConfig, Sequence
from hearth_server.engine.params import SamplingParams, StepOutput

ROOT = Path(__file__).resolve().parent
MODEL_URI = "builtin://smollm2-135m-instruct"
WORDS = [
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "a",
    "lazy",
    "dog",
    "while",
    "robots",
    "paint",
    "bright",
    "colours",
]
BUDGET = 256  # --max-num-batched-tokens


def texts(n: int) -> list[str]:
    return [" ".join(WORDS[(i + j) % len(WORDS)] for j in range(8 + i % 24)) for i in range(n)]


def hf_direct(model: Any, ids: list[list[int]]) -> torch.Tensor:
    out, start = [], 0
    with torch.inference_mode():
        while start < len(ids):
            end = next_batch(ids, start, BUDGET)
            batch = ids[start:end]
            width = max(map(len, batch))
            tokens = torch.tensor([b + [0] * (width - len(b)) for b in batch])
            mask = torch.tensor([[1] * len(b) + [0] * (width - len(b)) for b in batch])
            hidden = model(input_ids=tokens, attention_mask=mask).last_hidden_state
            out.append(mean_pool(hidden, [len(b) for b in batch]))
            start = end
    return torch.cat(out)


def via_engine(engine: Engine, ids: list[list[int]]) -> torch.Tensor:
    done = threading.Event()
    result: list[torch.Tensor] = []

    def deliver(vectors: torch.Tensor | None, why: str | None) -> None:
        assert vectors is not None, why
        result.append(vectors)
        done.set()

    engine.submit_embedding(EmbeddingJob(ids, deliver))
    assert done.wait(600)
    return result[0]


def token_gaps(engine: Engine, prompt: list[int], tokens: int) -> list[float]:
    """Seconds between the streamed tokens of one greedy generation."""
    stamps: list[float] = []
    done = threading.Event()

    def emit(out: StepOutput) -> None:
        if out.token_ids:
            stamps.append(time.perf_counter())
        if out.finished:
            done.set()

    params = SamplingParams(max_tokens=tokens, temperature=0, ignore_eos=True)
    engine.submit(Sequence(prompt, params, emit))
    assert done.wait(600)
    return [b - a for a, b in itertools.pairwise(stamps)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    reps, n_texts, gen_tokens = (2, 32, 24) if args.quick else (5, 128, 64)

    import transformers

    from hearth_server.models import resolve_model
    from hearth_server.models.loading import load_model

    hf: Any = transformers
    path = resolve_model(MODEL_URI).path
    model, tok, _ = load_model(path)
    reference = hf.AutoModel.from_pretrained(path, dtype=torch.float32).eval()
    engine = Engine(model, tok, EngineConfig(max_model_len=2048, max_num_batched_tokens=BUDGET))
    engine.start()
    ids = [tok(t)["input_ids"] for t in texts(n_texts)]
    rates: dict[str, list[float]] = {"hf_direct": [], "engine": []}
    ratios, cosines = [], []
    try:
        hf_direct(reference, ids[:4])  # warm-up: first calls allocate and pick kernels
        via_engine(engine, ids[:4])
        for rep in range(reps):
            order = ["hf_direct", "engine"] if rep % 2 == 0 else ["engine", "hf_direct"]
            vectors = {}
            for peer in order:
                start = time.perf_counter()
                vectors[peer] = (
                    hf_direct(reference, ids) if peer == "hf_direct" else via_engine(engine, ids)
                )
                rates[peer].append(len(ids) / (time.perf_counter() - start))
            ratios.append(rates["engine"][-1] / rates["hf_direct"][-1])
            cosines.append(float((vectors["engine"] * vectors["hf_direct"]).sum(-1).min()))
        prompt = tok("Write a story about a robot who paints.")["input_ids"]
        alone = token_gaps(engine, prompt, gen_tokens)
        stop = threading.Event()

        def keep_embedding() -> None:
            while not stop.is_set():
                via_engine(engine, ids)

        feeder = threading.Thread(target=keep_embedding)
        feeder.start()
        try:
            beside = token_gaps(engine, prompt, gen_tokens)
        finally:
            stop.set()
            feeder.join()
    finally:
        engine.shutdown()
    result = {
        "texts": len(ids),
        "tokens": sum(map(len, ids)),
        "texts_per_s": {k: statistics.median(v) for k, v in rates.items()},
        "median_ratio_engine_over_hf": statistics.median(ratios),
        "min_cosine_engine_vs_hf": min(cosines),
        "token_gap_s": {
            "alone": {"median": statistics.median(alone), "max": max(alone)},
            "beside_embeddings": {"median": statistics.median(beside), "max": max(beside)},
        },
    }
    print(json.dumps(result, indent=2))
    out = ROOT / "results" / "embeddings.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
