"""Benchmark hearth-server against its peers on the same prompts, in one run.

    python bench/bench_server.py [--quick]

Peers (all greedy, fixed prompt, 64 forced output tokens, same threads):
  * naive: sequential transformers ``generate`` (and with PEFT adapter switching);
  * ceiling: the raw batched forward pass of the same model (bs = concurrency);
  * llama.cpp: llama-cpp-python on the same GGUF (SmolLM2's bundled Q4_1 file) in its own
    process (bench/llama_cpp_peer.py): requests one after another, and 16 sequences
    decoded together through ``llama_decode`` batches (if llama-cpp-python is installed:
    ``make bench-peers``);
  * hearth-server: started as a subprocess, driven by an asyncio httpx client, at the
    default precision (fp32 on CPU), with ``--precision int8`` and ``int4``, and with
    ``--engine-thread`` (the engine as a thread of the HTTP process, as before the engine
    got its own process).
Quality of int8 and int4 next to their speed: greedy agreement with fp32 (20 prompts x 32 tokens)
and perplexity on a fixed text, both in-process.
Prints a table of ratios and writes JSON to bench/results/. Not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import torch

ROOT = Path(__file__).resolve().parent
MODEL_URI = "builtin://smollm2-135m-instruct"
PROMPT = [{"role": "user", "content": "Write a short story about a robot who learns to paint."}]
OUT_TOKENS = 64


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- in-process peers -------------------------------------------------------------------
def load_reference() -> tuple[Any, Any, list[int], Path]:
    import transformers

    from hearth_server.models import resolve_model

    hf: Any = transformers  # untyped entry points
    path = resolve_model(MODEL_URI).path
    tok = hf.AutoTokenizer.from_pretrained(path)
    model = hf.AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    ids = list(tok.apply_chat_template(PROMPT, add_generation_prompt=True))
    return model, tok, ids, path


def make_adapters(path: Path, n: int, out: Path) -> list[Path]:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from hearth_server.engine.lora import TARGET_MODULES

    dirs = []
    for i in range(n):
        base = AutoModelForCausalLM.from_pretrained(path)
        torch.manual_seed(100 + i)
        cfg = LoraConfig(
            r=16,
            lora_alpha=16,
            init_lora_weights=False,
            target_modules=list(TARGET_MODULES),
        )
        peft_model = get_peft_model(base, cfg)
        with torch.no_grad():
            for name, p in peft_model.named_parameters():
                if "lora_B" in name:
                    p.mul_(0.1)  # keep outputs fluent; overhead does not depend on values
        d = out / f"adapter-{i}"
        peft_model.save_pretrained(str(d))
        dirs.append(d)
    return dirs


@torch.inference_mode()
def naive_sequential(model: Any, ids: list[int], n: int) -> dict[str, float]:
    x = torch.tensor([ids])
    mask = torch.ones_like(x)
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(n):
        model.generate(
            x,
            attention_mask=mask,
            max_new_tokens=OUT_TOKENS,
            min_new_tokens=OUT_TOKENS,
            do_sample=False,
            pad_token_id=0,
        )
    return _rates(n * OUT_TOKENS, start, cpu)


@torch.inference_mode()
def peft_switching(model: Any, adapters: list[Path], ids: list[int], n: int) -> float:
    from peft import PeftModel

    peft_model: Any = PeftModel.from_pretrained(model, str(adapters[0]), adapter_name="a0")
    for i, d in enumerate(adapters[1:], start=1):
        peft_model.load_adapter(str(d), adapter_name=f"a{i}")
    x = torch.tensor([ids])
    mask = torch.ones_like(x)
    start = time.perf_counter()
    for i in range(n):
        peft_model.set_adapter(f"a{i % len(adapters)}")
        peft_model.generate(
            input_ids=x,
            attention_mask=mask,
            max_new_tokens=OUT_TOKENS,
            min_new_tokens=OUT_TOKENS,
            do_sample=False,
            pad_token_id=0,
        )
    rate = n * OUT_TOKENS / (time.perf_counter() - start)
    peft_model.unload()
    return rate


@torch.inference_mode()
def raw_batched(model: Any, ids: list[int], batch: int) -> dict[str, float]:
    """Prefill + greedy decode loop with the HF KV cache: no scheduling, no HTTP."""
    x = torch.tensor([ids] * batch)
    start, cpu = time.perf_counter(), time.process_time()
    out = model(input_ids=x, use_cache=True)
    past = out.past_key_values
    nxt = out.logits[:, -1].argmax(-1, keepdim=True)
    for _ in range(OUT_TOKENS - 1):
        out = model(input_ids=nxt, past_key_values=past, use_cache=True)
        past = out.past_key_values
        nxt = out.logits[:, -1].argmax(-1, keepdim=True)
    return _rates(batch * OUT_TOKENS, start, cpu)


def _rates(tokens: int, wall_start: float, cpu_start: float) -> dict[str, float]:
    """Output tokens per wall second, and per CPU second of this process (the latter
    is far less sensitive to other work on a shared machine)."""
    wall = time.perf_counter() - wall_start
    cpu = time.process_time() - cpu_start
    return {"tok_s": tokens / wall, "tok_cpu_s": tokens / cpu}


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (the server and its engine process)."""
    found = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            found += process_tree(int(child))
    return found


def tree_cpu_seconds(pid: int) -> float:
    return sum(cpu_seconds(p) for p in process_tree(pid))


def llama_cpp_peer(ids: list[int], concurrency: int, sequential: int) -> dict[str, float] | None:
    """bench/llama_cpp_peer.py in its own process; None if llama-cpp-python is missing."""
    if importlib.util.find_spec("llama_cpp") is None:
        return None
    from hearth_server.models.builtin import gguf_path

    cmd = [
        sys.executable,
        str(ROOT / "llama_cpp_peer.py"),
        str(gguf_path("smollm2-135m-instruct")),
        "--prompt-ids",
        ",".join(map(str, ids)),
        "--out-tokens",
        str(OUT_TOKENS),
        "--sequential",
        str(sequential),
        "--concurrency",
        str(concurrency),
        "--threads",
        str(torch.get_num_threads()),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# -- int8 quality ------------------------------------------------------------------------
QUALITY_PROMPTS = [
    "What is the capital of France?",
    "Write a haiku about autumn leaves.",
    "Explain photosynthesis in one sentence.",
    "List three uses of a paperclip.",
    "How do I reverse a list in Python?",
    "Why is the sky blue?",
    "Give me a name for a friendly robot.",
    "What is 12 times 7?",
    "Describe the smell of rain.",
    "Summarise the plot of Romeo and Juliet.",
    "What should I pack for a weekend hike?",
    "Translate 'good morning' into Spanish.",
    "Write a short toast for a wedding.",
    "What is a prime number?",
    "Suggest a healthy breakfast.",
    "How does a bicycle stay upright?",
    "Tell me a fun fact about octopuses.",
    "What is the difference between weather and climate?",
    "Write the opening line of a mystery novel.",
    "How many continents are there?",
]
QUALITY_TOKENS = 32
PERPLEXITY_TEXT = (
    "The old lighthouse stood at the edge of the cliff, its white paint peeling in long "
    "strips after a hundred winters of salt and wind. Every evening the keeper climbed the "
    "spiral stairs, one hundred and twelve of them, to light the lamp that warned ships "
    "away from the rocks below. The town had grown used to the slow sweep of the beam "
    "across their windows, and children fell asleep counting the seconds between flashes. "
    "When the harbour authority announced that an automatic light would replace him, the "
    "keeper said nothing at first. He polished the brass, wound the clock and wrote the "
    "weather in his log as he had always done. On his last night he left the door open, "
    "and half the town climbed the stairs to watch the sun go down over the water."
)


def _greedy(model: Any, ids: list[int], n: int) -> list[int]:
    x = torch.tensor([ids])
    out = model.generate(
        x,
        attention_mask=torch.ones_like(x),
        max_new_tokens=n,
        min_new_tokens=n,
        do_sample=False,
        pad_token_id=0,
    )
    return list(out[0, len(ids) :].tolist())


def _perplexity(model: Any, ids: list[int]) -> float:
    x = torch.tensor([ids])
    return float(torch.exp(model(input_ids=x, labels=x).loss))


@torch.inference_mode()
def quantised_quality(path: Path, tok: Any, reference: Any, precision: str) -> dict[str, float]:
    """Greedy agreement of the ``precision`` model with fp32 (fraction of identical
    tokens, position by position, and of tokens before the first difference) and the
    perplexity of both on a fixed text."""
    from hearth_server.models.loading import load_model

    quantised, _, _ = load_model(path, precision=precision)
    same = before_first_difference = 0
    for prompt in QUALITY_PROMPTS:
        ids = list(
            tok.apply_chat_template(
                [{"role": "user", "content": prompt}], add_generation_prompt=True
            )
        )
        want, got = _greedy(reference, ids, QUALITY_TOKENS), _greedy(quantised, ids, QUALITY_TOKENS)
        matches = [a == b for a, b in zip(want, got, strict=True)]
        same += sum(matches)
        before_first_difference += matches.index(False) if False in matches else len(matches)
    total = len(QUALITY_PROMPTS) * QUALITY_TOKENS
    text_ids = list(tok(PERPLEXITY_TEXT)["input_ids"])
    return {
        "greedy_agreement": same / total,
        "agreement_before_first_difference": before_first_difference / total,
        "perplexity_fp32": _perplexity(reference, text_ids),
        "perplexity_quantised": _perplexity(quantised, text_ids),
        "perplexity_tokens": len(text_ids),
    }


# -- hearth-server ----------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(port: int, extra: list[str]) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable,
        "-m",
        "hearth_server.cli",
        "serve",
        MODEL_URI,
        "--served-model-name",
        "base",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        *extra,
    ]
    proc = subprocess.Popen(cmd, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    for _ in range(600):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        if proc.poll() is not None:
            raise RuntimeError("server exited during startup")
        time.sleep(0.5)
    raise RuntimeError("server did not become healthy")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def one_request(client: httpx.AsyncClient, model: str) -> tuple[float, int, float]:
    """Stream one chat completion; return (ttft, output tokens, end time)."""
    body = {
        "model": model,
        "messages": PROMPT,
        "max_tokens": OUT_TOKENS,
        "temperature": 0,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    start = time.perf_counter()
    ttft = None
    tokens = 0
    async with client.stream("POST", "/v1/chat/completions", json=body) as r:
        r.raise_for_status()
        async for line in r.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
            elif ttft is None and chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                ttft = time.perf_counter() - start
    return ttft or float("nan"), tokens, time.perf_counter()


async def load_run(url: str, models: list[str]) -> dict[str, float]:
    async with httpx.AsyncClient(base_url=url, timeout=600) as client:
        start = time.perf_counter()
        results = await asyncio.gather(*(one_request(client, m) for m in models))
        wall = time.perf_counter() - start
    ttfts = sorted(r[0] for r in results)
    total = sum(r[1] for r in results)
    return {
        "tok_s": total / wall,
        "ttft_p50": statistics.median(ttfts),
        "ttft_p95": ttfts[min(len(ttfts) - 1, int(0.95 * len(ttfts)))],
        "tokens": total,
    }


class Server:
    """hearth-server in a subprocess, idle (no CPU use) between load runs."""

    def __init__(self, adapters: list[Path], concurrency: int, extra: list[str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = start_server(
            self.port,
            [
                "--max-num-seqs",
                str(concurrency),
                "--max-loras",
                str(len(adapters)),
                "--max-cpu-loras",
                str(len(adapters)),
                # /v1/load_lora_adapter reads only from allowed roots.
                "--adapter-root",
                str(adapters[0].parent),
                *extra,
            ],
        )
        self.load_times = []
        for i, d in enumerate(adapters):
            t = time.perf_counter()
            httpx.post(
                f"{self.url}/v1/load_lora_adapter",
                json={"lora_name": f"a{i}", "lora_path": str(d)},
                timeout=60,
            ).raise_for_status()
            self.load_times.append(time.perf_counter() - t)
        asyncio.run(load_run(self.url, ["base"]))  # warm-up

    def run(self, models: list[str]) -> dict[str, float]:
        cpu = tree_cpu_seconds(self.proc.pid)
        result = asyncio.run(load_run(self.url, models))
        result["tok_cpu_s"] = result["tokens"] / (tree_cpu_seconds(self.proc.pid) - cpu)
        return result

    def close(self) -> float:
        rss = sum(peak_rss_mb(p) for p in process_tree(self.proc.pid))
        self.proc.terminate()
        self.proc.wait(timeout=30)
        return rss


def interleaved(
    model: Any, ids: list[int], adapters: list[Path], concurrency: int, reps: int, seq_n: int
) -> dict[str, Any]:
    """Alternate peers and server runs (A/B/A/B) so background load hits both alike;
    every ratio is computed within one repetition, and the median ratio reported."""
    fp32 = Server(adapters, concurrency, [])
    int8 = Server(adapters, concurrency, ["--precision", "int8"])
    int4 = Server(adapters, concurrency, ["--precision", "int4"])
    thread = Server(adapters, concurrency, ["--engine-thread"])
    plans: dict[str, tuple[Server, list[str]]] = {
        "base_x16": (fp32, ["base"] * concurrency),
        "one_adapter_x16": (fp32, ["a0"] * concurrency),
        "eight_adapters_x16": (fp32, [f"a{i % len(adapters)}" for i in range(concurrency)]),
        "int8_x16": (int8, ["base"] * concurrency),
        "int4_x16": (int4, ["base"] * concurrency),
        "thread_x16": (thread, ["base"] * concurrency),
        "int8_eight_adapters_x16": (
            int8,
            [f"a{i % len(adapters)}" for i in range(concurrency)],
        ),
    }
    singles = {
        "single": fp32,
        "int8_single": int8,
        "int4_single": int4,
        "thread_single": thread,
    }
    runs: dict[str, list[Any]] = {
        k: [] for k in ["raw_batched", "naive_generate", *singles, *plans]
    }
    llama_runs: list[dict[str, float]] = []
    try:
        for rep in range(reps):
            runs["raw_batched"].append(raw_batched(model, ids, concurrency))
            for name, (server, models) in plans.items():
                runs[name].append(server.run(models))
            runs["naive_generate"].append(naive_sequential(model, ids, seq_n))
            for name, server in singles.items():
                runs[name].append(server.run(["base"]))
            peer = llama_cpp_peer(ids, concurrency, max(2, 2 * seq_n))
            if peer is not None:
                llama_runs.append(peer)
            log(
                f"rep {rep}: raw {runs['raw_batched'][-1]['tok_s']:.1f}, "
                f"server x16 {runs['base_x16'][-1]['tok_s']:.1f}, "
                f"1 adapter {runs['one_adapter_x16'][-1]['tok_s']:.1f}, "
                f"8 adapters {runs['eight_adapters_x16'][-1]['tok_s']:.1f}, "
                f"int8 x16 {runs['int8_x16'][-1]['tok_s']:.1f}, "
                f"naive {runs['naive_generate'][-1]['tok_s']:.1f}, "
                f"single {runs['single'][-1]['tok_s']:.1f}, "
                f"int8 single {runs['int8_single'][-1]['tok_s']:.1f}, "
                f"int4 x16 {runs['int4_x16'][-1]['tok_s']:.1f}, "
                f"int4 single {runs['int4_single'][-1]['tok_s']:.1f}, "
                f"engine thread x16 {runs['thread_x16'][-1]['tok_s']:.1f}, "
                f"llama.cpp {llama_runs[-1] if llama_runs else 'n/a'}"
            )
    finally:
        rss = fp32.close()
        rss_int8 = int8.close()
        int4.close()
        thread.close()
    server = fp32

    def med(xs: list[float]) -> float:
        return float(statistics.median(xs))

    tok = {k: [r["tok_s"] for r in v] for k, v in runs.items()}
    cpu = {k: [r["tok_cpu_s"] for r in v] for k, v in runs.items()}

    def ratios_of(rates: dict[str, list[float]]) -> dict[str, float]:
        def ratio(num: str, den: str) -> float:
            return med([x / y for x, y in zip(rates[num], rates[den], strict=True)])

        return {
            "x16_vs_naive": ratio("base_x16", "naive_generate"),
            "x16_vs_raw": ratio("base_x16", "raw_batched"),
            "eight_vs_one_adapter": ratio("eight_adapters_x16", "one_adapter_x16"),
            "one_adapter_vs_base": ratio("one_adapter_x16", "base_x16"),
            "single_vs_naive": ratio("single", "naive_generate"),
            "int8_x16_vs_fp32": ratio("int8_x16", "base_x16"),
            "int8_single_vs_fp32": ratio("int8_single", "single"),
            "int8_x16_vs_naive": ratio("int8_x16", "naive_generate"),
            "int8_eight_vs_fp32": ratio("int8_eight_adapters_x16", "eight_adapters_x16"),
            "int4_x16_vs_fp32": ratio("int4_x16", "base_x16"),
            "int4_single_vs_fp32": ratio("int4_single", "single"),
        }

    ratios = ratios_of(tok)
    ratios["x16_vs_thread"] = med(
        [x / y for x, y in zip(tok["base_x16"], tok["thread_x16"], strict=True)]
    )
    ratios["single_vs_thread"] = med(
        [x / y for x, y in zip(tok["single"], tok["thread_single"], strict=True)]
    )
    llama: dict[str, Any] = {}
    if llama_runs:
        seq = [r["sequential_tok_s"] for r in llama_runs]
        bat = [r["batched_tok_s"] for r in llama_runs]
        llama = {"sequential_tok_s": med(seq), "batched_tok_s": med(bat)}
        for key in ("single", "int8_single", "int4_single"):
            ratios[f"{key}_vs_llama_seq"] = med([x / y for x, y in zip(tok[key], seq, strict=True)])
        for key in ("base_x16", "int8_x16", "int4_x16"):
            ratios[f"{key}_vs_llama_batched"] = med(
                [x / y for x, y in zip(tok[key], bat, strict=True)]
            )
            ratios[f"{key}_vs_llama_seq"] = med([x / y for x, y in zip(tok[key], seq, strict=True)])
    return {
        "llama_cpp": llama,
        "tok_s": {k: med(v) for k, v in tok.items()},
        "tok_s_runs": {k: [round(x, 1) for x in v] for k, v in tok.items()},
        "ratios": ratios,
        "tok_cpu_s": {k: med(v) for k, v in cpu.items()},
        "ratios_cpu": ratios_of(cpu),
        "ttft": {
            k: {
                "p50": med([r["ttft_p50"] for r in runs[k]]),
                "p95": med([r["ttft_p95"] for r in runs[k]]),
            }
            for k in plans
        },
        "peak_rss_mb": rss,
        "peak_rss_mb_int8": rss_int8,
        "adapter_load_s_p50": med(server.load_times),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer sequential requests")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(2)
    seq_n = 1 if args.quick else 2
    log("loading reference model")
    model, tok, ids, path = load_reference()
    log(f"prompt: {len(ids)} tokens, {OUT_TOKENS} output tokens, concurrency {args.concurrency}")
    with tempfile.TemporaryDirectory() as tmp:
        adapters = make_adapters(path, 8, Path(tmp))
        res: dict[str, Any] = {
            "prompt_tokens": len(ids),
            "output_tokens": OUT_TOKENS,
            "concurrency": args.concurrency,
            "torch": torch.__version__,
            "cpu_count": os.cpu_count(),
            "reps": args.reps,
        }
        res.update(interleaved(model, ids, adapters, args.concurrency, args.reps, seq_n))
        log("PEFT sequential with adapter switching")
        res["peft_switching"] = peft_switching(model, adapters, ids, seq_n * 2)
    log("int8 and int4 quality: greedy agreement with fp32 and perplexity")
    res["int8_quality"] = quantised_quality(path, tok, model, "int8")
    res["int4_quality"] = quantised_quality(path, tok, model, "int4")
    report(res)
    out_dir = ROOT / "results"
    out_dir.mkdir(exist_ok=True)
    out = out_dir / f"bench_server_{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(res, indent=2))
    log(f"wrote {out}")


def _mark(value: float, target: float) -> str:
    return "met" if value >= target else "NOT met"


def report(res: dict[str, Any]) -> None:
    t, r = res["tok_s"], res["ratios"]
    llama = res["llama_cpp"]
    rows: list[tuple[str, float | None, str, str]] = [
        ("naive sequential generate (peer)", t["naive_generate"], "", ""),
        ("PEFT sequential, adapter switching (peer)", res["peft_switching"], "", ""),
        ("raw batched forward bs16 (ceiling)", t["raw_batched"], "", ""),
        ("llama.cpp sequential, same GGUF (peer)", llama.get("sequential_tok_s"), "", ""),
        ("llama.cpp 16 sequences batched (peer)", llama.get("batched_tok_s"), "", ""),
        (
            "hearth-server --engine-thread, 1 request",
            t["thread_single"],
            f"process engine {r['single_vs_thread']:.2f}x this",
            "",
        ),
        (
            "hearth-server --engine-thread, 16 concurrent",
            t["thread_x16"],
            f"process engine {r['x16_vs_thread']:.2f}x this",
            "",
        ),
        (
            "hearth-server, 1 request",
            t["single"],
            f"{r['single_vs_naive']:.2f}x naive",
            f">= 0.90x naive: {_mark(r['single_vs_naive'], 0.9)}",
        ),
        (
            "hearth-server, 16 concurrent base",
            t["base_x16"],
            f"{r['x16_vs_naive']:.1f}x naive, {r['x16_vs_raw']:.0%} of raw",
            f">= 6x naive: {_mark(r['x16_vs_naive'], 6.0)}",
        ),
        (
            "hearth-server, 16 concurrent 1 adapter",
            t["one_adapter_x16"],
            f"{r['one_adapter_vs_base']:.0%} of base",
            "",
        ),
        (
            "hearth-server, 16 concurrent 8 adapters",
            t["eight_adapters_x16"],
            f"{r['eight_vs_one_adapter']:.0%} of 1 adapter",
            f">= 80%: {_mark(r['eight_vs_one_adapter'], 0.8)}",
        ),
        (
            "hearth-server int8, 1 request",
            t["int8_single"],
            f"{r['int8_single_vs_fp32']:.2f}x fp32 single",
            "",
        ),
        (
            "hearth-server int8, 16 concurrent base",
            t["int8_x16"],
            f"{r['int8_x16_vs_fp32']:.2f}x fp32 x16, {r['int8_x16_vs_naive']:.1f}x naive",
            "",
        ),
        (
            "hearth-server int4, 1 request",
            t["int4_single"],
            f"{r['int4_single_vs_fp32']:.2f}x fp32 single",
            "",
        ),
        (
            "hearth-server int4, 16 concurrent base",
            t["int4_x16"],
            f"{r['int4_x16_vs_fp32']:.2f}x fp32 x16",
            "",
        ),
        (
            "hearth-server int8, 16 concurrent 8 adapters",
            t["int8_eight_adapters_x16"],
            f"{r['int8_eight_vs_fp32']:.2f}x fp32 8 adapters",
            "",
        ),
    ]
    if llama:
        for label, key, peer, goal in (
            ("hearth 1 request vs llama.cpp sequential", "single", "seq", 0.5),
            ("hearth int8 1 request vs llama.cpp sequential", "int8_single", "seq", 0.5),
            ("hearth int4 1 request vs llama.cpp sequential", "int4_single", "seq", 0.5),
            ("hearth 16 concurrent vs llama.cpp sequential", "base_x16", "seq", 1.0),
            ("hearth 16 concurrent vs llama.cpp batched", "base_x16", "batched", 1.0),
            ("hearth int8 16 concurrent vs llama.cpp batched", "int8_x16", "batched", 1.0),
            ("hearth int4 16 concurrent vs llama.cpp batched", "int4_x16", "batched", 1.0),
        ):
            vs_llama = r[f"{key}_vs_llama_{peer}"]
            rows.append((label, t[key], f"{vs_llama:.2f}x", f">= {goal}x: {_mark(vs_llama, goal)}"))
    print(
        f"\n{'run (median of ' + str(res['reps']) + ' interleaved reps)':<46} {'tok/s':>8}  "
        f"{'ratio (per-rep median)':<34} target"
    )
    for name, val, ratio, target in rows:
        shown = f"{val:8.1f}" if isinstance(val, float) else f"{'n/a':>8}"
        print(f"{name:<46} {shown}  {ratio:<34} {target}")
    for name in ("int8", "int4"):
        q = res[f"{name}_quality"]
        print(
            f"\n{name} quality: greedy agreement with fp32 {q['greedy_agreement']:.1%} of "
            f"{len(QUALITY_PROMPTS)}x{QUALITY_TOKENS} tokens "
            f"({q['agreement_before_first_difference']:.1%} before the first difference); "
            f"perplexity on {q['perplexity_tokens']} tokens: fp32 {q['perplexity_fp32']:.2f}, "
            f"{name} {q['perplexity_quantised']:.2f}"
        )
    ft = res["ttft"]
    print(
        "TTFT, 16 concurrent: "
        + "; ".join(
            f"{k} p50 {ft[k]['p50']:.2f}s p95 {ft[k]['p95']:.2f}s"
            for k in ("base_x16", "eight_adapters_x16", "int8_x16", "int4_x16")
        )
    )
    print(
        f"server peak RSS {res['peak_rss_mb']:.0f} MB (int8 {res['peak_rss_mb_int8']:.0f} MB); "
        f"adapter load p50 {res['adapter_load_s_p50'] * 1000:.0f} ms (rank 16, all 7 projections)"
    )
    c, rc = res["tok_cpu_s"], res["ratios_cpu"]
    print(
        "\nper CPU-second of the generating processes (robust to other load on a shared box; "
        "the HTTP client's CPU is not counted):\n"
        f"  tok/CPU-s: naive {c['naive_generate']:.1f}, raw bs16 {c['raw_batched']:.1f}, "
        f"server single {c['single']:.1f}, server x16 base {c['base_x16']:.1f}, "
        f"1 adapter {c['one_adapter_x16']:.1f}, 8 adapters {c['eight_adapters_x16']:.1f}, "
        f"int8 single {c['int8_single']:.1f}, int8 x16 {c['int8_x16']:.1f}, "
        f"int4 single {c['int4_single']:.1f}, int4 x16 {c['int4_x16']:.1f}, "
        f"engine thread single {c['thread_single']:.1f}, x16 {c['thread_x16']:.1f}\n"
        f"  ratios: single/naive {rc['single_vs_naive']:.2f}x, x16/naive "
        f"{rc['x16_vs_naive']:.1f}x, x16/raw {rc['x16_vs_raw']:.0%}, 1 adapter/base "
        f"{rc['one_adapter_vs_base']:.0%}, 8/1 adapters {rc['eight_vs_one_adapter']:.0%}, "
        f"int8/fp32 x16 {rc['int8_x16_vs_fp32']:.2f}x"
    )
    print(f"runs: {res['tok_s_runs']}")


if __name__ == "__main__":
    main()
