"""llama.cpp as bench_server's peer: the same GGUF, the same prompt, greedy, forced length.

    python bench/llama_cpp_peer.py GGUF --prompt-ids 1,2,3 --out-tokens 64 \
        --sequential 4 --concurrency 16

Prints one JSON object: ``sequential_tok_s`` (requests one after another through
llama-cpp-python's ``generate``) and ``batched_tok_s`` (``concurrency`` sequences decoded
together through the low-level ``llama_decode`` API: one prefill batch, then one batch
of ``concurrency`` tokens per step, as a batching llama.cpp server runs them). Runs in
its own process so that llama.cpp's OpenMP runtime never shares a process with torch's.
Needs llama-cpp-python (``make bench-peers`` builds it from source).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import time
from typing import Any

import numpy as np


def sequential(gguf: str, ids: list[int], out_tokens: int, n: int, threads: int) -> float:
    from llama_cpp import Llama

    llm: Any = Llama(model_path=gguf, n_ctx=512, n_threads=threads, n_batch=256, verbose=False)
    for _ in llm.generate(ids, temp=0.0, top_k=1, reset=True):  # warm-up
        break
    start = time.perf_counter()
    for _ in range(n):
        for produced, _tok in enumerate(llm.generate(ids, temp=0.0, top_k=1, reset=True), 1):
            if produced >= out_tokens:
                break
    return n * out_tokens / (time.perf_counter() - start)


def batched(gguf: str, ids: list[int], out_tokens: int, concurrency: int, threads: int) -> float:
    import llama_cpp as lc

    model_params = lc.llama_model_default_params()
    model = lc.llama_model_load_from_file(gguf.encode(), model_params)
    params = lc.llama_context_default_params()
    params.n_ctx = concurrency * (len(ids) + out_tokens + 16)
    params.n_batch = max(512, concurrency * len(ids))
    params.n_ubatch = params.n_batch
    params.n_seq_max = concurrency
    params.n_threads = params.n_threads_batch = threads
    ctx = lc.llama_init_from_model(model, params)
    vocab = lc.llama_model_get_vocab(model)
    n_vocab = lc.llama_vocab_n_tokens(vocab)
    batch = lc.llama_batch_init(params.n_batch, 0, 1)

    def run(tokens: list[tuple[int, int, int, bool]]) -> list[int]:
        """Decode (token, position, sequence, wants logits) rows; greedy next tokens."""
        for i, (tok, pos, seq, wants) in enumerate(tokens):
            batch.token[i] = tok
            batch.pos[i] = pos
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = seq
            batch.logits[i] = wants
        batch.n_tokens = len(tokens)
        if lc.llama_decode(ctx, batch) != 0:
            raise RuntimeError("llama_decode failed")
        picks = []
        for i, (_, _, _, wants) in enumerate(tokens):
            if wants:
                row = lc.llama_get_logits_ith(ctx, i)
                logits = np.ctypeslib.as_array(
                    ctypes.cast(row, ctypes.POINTER(ctypes.c_float)), (n_vocab,)
                )
                picks.append(int(logits.argmax()))
        return picks

    def one_pass() -> float:
        lc.llama_memory_clear(lc.llama_get_memory(ctx), True)
        start = time.perf_counter()
        prefill = [
            (tok, pos, seq, pos == len(ids) - 1)
            for seq in range(concurrency)
            for pos, tok in enumerate(ids)
        ]
        nxt = run(prefill)
        for step in range(1, out_tokens):
            pos = len(ids) + step - 1
            nxt = run([(nxt[s], pos, s, True) for s in range(concurrency)])
        return concurrency * out_tokens / (time.perf_counter() - start)

    try:
        one_pass()  # warm-up
        return one_pass()
    finally:
        lc.llama_batch_free(batch)
        lc.llama_free(ctx)
        lc.llama_model_free(model)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("gguf")
    parser.add_argument("--prompt-ids", required=True)
    parser.add_argument("--out-tokens", type=int, default=64)
    parser.add_argument("--sequential", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    ids = [int(t) for t in args.prompt_ids.split(",")]
    result = {
        "sequential_tok_s": sequential(
            args.gguf, ids, args.out_tokens, args.sequential, args.threads
        ),
        "batched_tok_s": batched(args.gguf, ids, args.out_tokens, args.concurrency, args.threads),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
