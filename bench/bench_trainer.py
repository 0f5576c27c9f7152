"""Training throughput: hearth-trainer vs a plain transformers Trainer + peft loop.

Both train the same LoRA (rank, alpha, target modules, no dropout) on the same tokenised
CHAT examples (same loss masks), with the same learning rate, warm-up, cosine schedule,
epochs and seed, in the same process, one after the other. The peer pads every example
to the longest in its (randomly drawn) batch, as ``DataCollatorForSeq2Seq`` does; its
batch size in examples is chosen so both take about the same number of optimizer steps.

Throughput counts real (non-padding) tokens per second of training-loop time. Quality:
both final adapters are scored on the same held-out examples with the same loss
function (mean cross-entropy over assistant tokens).

    python bench/bench_trainer.py                       # SmolLM2-135M, ~10 min on 2 cores
    python bench/bench_trainer.py --examples 48 --epochs 1   # quicker

Writes bench/results/trainer-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

WORDS = [
    "river",
    "mountain",
    "quiet",
    "bright",
    "number",
    "garden",
    "window",
    "yellow",
    "engine",
    "simple",
    "travel",
    "market",
    "winter",
    "summer",
    "letter",
    "bridge",
    "forest",
    "silver",
    "planet",
    "orange",
    "teacher",
    "history",
    "music",
    "ocean",
]


def make_rows(n: int, seed: int) -> list[dict[str, Any]]:
    """Chat examples with a realistic spread of lengths (short questions to long ones)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        q_words = int(rng.lognormvariate(3.3, 0.8)) + 3  # median ~30 words, long tail
        a_words = int(rng.lognormvariate(2.8, 0.6)) + 2
        question = " ".join(rng.choice(WORDS) for _ in range(min(q_words, 400)))
        answer = " ".join(rng.choice(WORDS) for _ in range(min(a_words, 150)))
        rows.append(
            {
                "messages": [
                    {"role": "user", "content": f"Q{i}: summarise: {question}"},
                    {"role": "assistant", "content": answer},
                ]
            }
        )
    return rows


def run_peer(args: argparse.Namespace, data: Path, samples_per_batch: int) -> dict[str, Any]:
    """Plain transformers Trainer + peft, per-example padding, no length grouping."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments

    from hearth_server.engine.lora import TARGET_MODULES
    from hearth_server.models import resolve_model
    from hearth_server.models.loading import load_model
    from hearth_trainer.datasets import load_examples
    from hearth_trainer.tokenization import tokenize_all

    torch.manual_seed(args.seed)
    model, tokenizer, _ = load_model(resolve_model(args.base_model).path)
    examples = load_examples(str(data), "CHAT")
    toks, _ = tokenize_all(tokenizer, examples, args.max_context_length)
    features = [
        {
            "input_ids": list(t.ids),
            "attention_mask": [1] * len(t),
            "labels": [i if m else -100 for i, m in zip(t.ids, t.mask, strict=True)],
        }
        for t in toks
    ]
    lora = LoraConfig(
        r=args.lora_rank,
        lora_alpha=2 * args.lora_rank,
        target_modules=list(TARGET_MODULES),  # what hearth-trainer adapts
        lora_dropout=0.0,
        bias="none",
        task_type="CAUSAL_LM",
    )
    peft_model = get_peft_model(model, lora)
    out = Path(tempfile.mkdtemp(prefix="peer-"))
    targs = TrainingArguments(
        output_dir=str(out),
        per_device_train_batch_size=samples_per_batch,
        num_train_epochs=args.epochs,
        learning_rate=args.learning_rate,
        warmup_steps=args.warmup_steps,
        lr_scheduler_type="cosine",
        max_grad_norm=1.0,
        weight_decay=0.0,
        seed=args.seed,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=not torch.cuda.is_available(),
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token  # padded positions are masked anyway
    collator = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100)
    trainer = Trainer(model=peft_model, args=targs, train_dataset=features, data_collator=collator)
    start, cpu_start = time.monotonic(), time.process_time()
    trainer.train()
    seconds, cpu = time.monotonic() - start, time.process_time() - cpu_start
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    real = sum(len(t) for t in toks) * args.epochs
    return {
        "name": "transformers Trainer + peft (per-example padding)",
        "seconds": seconds,
        "tokens": real,
        "tokensPerSecond": real / seconds,
        "cpuSeconds": cpu,
        "tokensPerCpuSecond": real / cpu,
        "steps": trainer.state.global_step,
        "finalTrainLoss": sum(losses[-3:]) / len(losses[-3:]),
        "model": peft_model,
        "tokenizer": tokenizer,
    }


def run_hearth(args: argparse.Namespace, data: Path) -> dict[str, Any]:
    from hearth_trainer.config import TrainConfig
    from hearth_trainer.train import Trainer

    out = Path(tempfile.mkdtemp(prefix="hearth-"))
    cfg = TrainConfig(
        dataset=str(data),
        output=out,
        base_model=args.base_model,
        epochs=args.epochs,
        learning_rate=args.learning_rate,
        learning_rate_warmup_steps=args.warmup_steps,
        lora_rank=args.lora_rank,
        batch_size=args.batch_size,
        max_context_length=args.max_context_length,
        eval_auto_carveout=False,
        checkpoint_steps=10**9,
        seed=args.seed,
    )
    trainer = Trainer(cfg)
    result = trainer.run()
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    losses = [x["trainLoss"] for x in lines if "trainLoss" in x]
    return {
        "name": "hearth-trainer (length-grouped token batches)",
        "seconds": result["trainSecondsThisRun"],
        "tokens": result["inputTokens"],
        "tokensPerSecond": result["inputTokens"] / result["trainSecondsThisRun"],
        "cpuSeconds": result["trainCpuSecondsThisRun"],
        "tokensPerCpuSecond": result["inputTokens"] / result["trainCpuSecondsThisRun"],
        "steps": result["steps"],
        "finalTrainLoss": sum(losses[-3:]) / len(losses[-3:]),
        "paddingEfficiency": result["paddingEfficiency"],
        "model": trainer.model,
        "tokenizer": trainer.tokenizer,
    }


def eval_loss(model: Any, tokenizer: Any, data: Path, max_len: int) -> float:
    """Same scorer for both: token-mean loss over assistant tokens of held-out data."""
    import torch

    from hearth_trainer.batching import plan_epoch
    from hearth_trainer.datasets import load_examples
    from hearth_trainer.tokenization import tokenize_all
    from hearth_trainer.train import LossComputer

    toks, _ = tokenize_all(tokenizer, load_examples(str(data), "CHAT"), max_len)
    loss_fn = LossComputer(model, tokenizer.pad_token_id or 0, "cpu")
    model.eval()
    total, n = 0.0, 0
    with torch.no_grad():
        for batch in plan_epoch([len(t) for t in toks], 2048, 0, 0):
            loss, count = loss_fn(toks, batch)
            total, n = total + float(loss), n + count
    return total / n


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--base-model", default="builtin://smollm2-135m-instruct")
    p.add_argument("--examples", type=int, default=96)
    p.add_argument("--eval-examples", type=int, default=16)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=1024, help="tokens per batch (ours)")
    p.add_argument("--learning-rate", type=float, default=1e-3)
    p.add_argument("--warmup-steps", type=int, default=0)
    p.add_argument("--lora-rank", type=int, default=8)
    p.add_argument("--max-context-length", type=int, default=1024)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--order", choices=("peer-first", "hearth-first"), default="hearth-first")
    args = p.parse_args()

    import torch
    from transformers import AutoTokenizer

    from hearth_server.models import resolve_model
    from hearth_trainer.datasets import load_examples
    from hearth_trainer.tokenization import tokenize_all

    work = Path(tempfile.mkdtemp(prefix="bench-trainer-"))
    data, held = work / "train.jsonl", work / "eval.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in make_rows(args.examples, args.seed)) + "\n")
    eval_rows = make_rows(args.eval_examples, args.seed + 1)
    held.write_text("\n".join(json.dumps(r) for r in eval_rows) + "\n")

    auto: Any = AutoTokenizer  # untyped entry point
    tokenizer = auto.from_pretrained(str(resolve_model(args.base_model).path))
    toks, stats = tokenize_all(tokenizer, load_examples(str(data), "CHAT"), args.max_context_length)
    mean_len = stats.tokens / stats.examples
    # Same number of optimizer steps: the peer's batch holds as many examples as ours do
    # on average (ours are capped by padded tokens, theirs by a fixed example count).
    from hearth_trainer.batching import plan_epoch

    our_batches = len(plan_epoch([len(t) for t in toks], args.batch_size, args.seed, 0))
    samples = math.ceil(stats.examples / our_batches)
    print(
        f"{stats.examples} examples, {stats.tokens} tokens (mean {mean_len:.0f}, "
        f"max {max(len(t) for t in toks)}), peer batch = {samples} examples, "
        f"torch threads = {torch.get_num_threads()}",
        flush=True,
    )

    runs = []
    order = ["hearth", "peer"] if args.order == "hearth-first" else ["peer", "hearth"]
    for which in order:
        run = run_peer(args, data, samples) if which == "peer" else run_hearth(args, data)
        run["evalLoss"] = eval_loss(
            run.pop("model"), run.pop("tokenizer"), held, args.max_context_length
        )
        print(f"  {run['name']}: {run['tokensPerSecond']:.1f} tok/s", flush=True)
        runs.append(run)
    ours = next(r for r in runs if r["name"].startswith("hearth"))
    peer = next(r for r in runs if not r["name"].startswith("hearth"))
    ratio = ours["tokensPerSecond"] / peer["tokensPerSecond"]
    cpu_ratio = ours["tokensPerCpuSecond"] / peer["tokensPerCpuSecond"]

    print()
    head = f"{'trainer':<52} {'tok/s':>8} {'tok/cpu-s':>10} {'steps':>6}"
    print(f"{head} {'train loss':>11} {'eval loss':>10}")
    for r in (peer, ours):
        print(
            f"{r['name']:<52} {r['tokensPerSecond']:>8.1f} {r['tokensPerCpuSecond']:>10.1f} "
            f"{r['steps']:>6} {r['finalTrainLoss']:>11.4f} {r['evalLoss']:>10.4f}"
        )
    print(f"\nspeed-up, CPU time (less sensitive to other load): {cpu_ratio:.2f}x (target >= 1.5x)")
    print(f"speed-up, wall time: {ratio:.2f}x")
    print(f"eval loss delta (ours - peer): {ours['evalLoss'] - peer['evalLoss']:+.4f}")

    out_dir = REPO / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"trainer-{time.strftime('%Y%m%d-%H%M%S')}.json"
    record = {
        "args": vars(args),
        "examples": stats.examples,
        "tokens": stats.tokens,
        "peerBatchSamples": samples,
        "torchThreads": torch.get_num_threads(),
        "hearth": ours,
        "peer": peer,
        "speedup": ratio,
        "speedupCpuTime": cpu_ratio,
        "evalLossDelta": ours["evalLoss"] - peer["evalLoss"],
    }
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {out}")
    return 0 if math.isfinite(ratio) else 1


if __name__ == "__main__":
    sys.exit(main())
