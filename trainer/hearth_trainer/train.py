"""LoRA supervised fine-tuning loop.

One optimizer step = ``gradient_accumulation_steps`` length-grouped batches of at most
``batch_size`` padded tokens (see :mod:`hearth_trainer.batching`). The loss of a step is
the mean cross-entropy over every target token in it, whatever the micro-batch split.
Logits are computed only at target positions: on a small model with a large
vocabulary the LM head and softmax over prompt tokens are a large share of the work and
contribute nothing to the loss.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hearth.datasets import Example
from hearth_trainer import checkpoint as ckpt
from hearth_trainer.batching import Batch, padding_ratio, plan_epoch, split_rows
from hearth_trainer.config import TrainConfig
from hearth_trainer.datasets import load_examples
from hearth_trainer.reporting import MultiReporter, Reporter
from hearth_trainer.tokenization import TokenizedExample, TokenizeStats, tokenize_all

log = logging.getLogger(__name__)

#: Eval set carved out automatically only when the dataset has at least this many examples.
MIN_EXAMPLES_FOR_CARVEOUT = 10


class TrainingError(Exception):
    """Training cannot proceed; the message says why (bad model, resume mismatch ...)."""


@dataclass
class TrainState:
    """Everything besides tensors that a checkpoint must restore."""

    step: int = 0
    epoch: int = 0  # 0-based epoch in progress
    batch_in_epoch: int = 0  # next batch of that epoch
    input_tokens: int = 0
    target_tokens: int = 0
    best_eval: float | None = None
    best_step: int | None = None
    evals_without_improvement: int = 0
    last_train_loss: float | None = None
    last_eval_loss: float | None = None
    stopped_early: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Data:
    train: list[TokenizedExample]
    eval: list[TokenizedExample]
    train_stats: TokenizeStats
    eval_stats: TokenizeStats
    eval_source: str


def resolve_base_model(cfg: TrainConfig) -> tuple[str, Path | None]:
    """(base model URI, warm-start adapter dir or None). Raises ``ModelResolutionError``
    (an input problem, exit code 3) when either cannot be found."""
    from hearth_server.models import ModelResolutionError, resolve_model

    adapter_dir: Path | None = None
    base = cfg.base_model
    if cfg.warm_start_from:
        adapter_dir = resolve_model(cfg.warm_start_from, kind="adapter").path
        if not base:
            meta = json.loads((adapter_dir / "adapter_config.json").read_text())
            base = meta.get("base_model_name_or_path")
            if not base:
                raise ModelResolutionError(
                    f"--warm-start-from {cfg.warm_start_from!r}: adapter_config.json names "
                    "no base_model_name_or_path; pass --base-model"
                )
    assert base is not None
    return base, adapter_dir


def _device(name: str) -> str:
    import torch

    if name != "auto":
        return name
    return "cuda" if torch.cuda.is_available() else "cpu"


def load_data(cfg: TrainConfig, tokenizer: Any) -> Data:
    train_examples: Sequence[Example] = load_examples(cfg.dataset, cfg.format)
    eval_examples: Sequence[Example] = []
    eval_source = "none"
    if cfg.evaluation_dataset:
        eval_examples = load_examples(cfg.evaluation_dataset, cfg.format)
        eval_source = cfg.evaluation_dataset
    elif cfg.eval_auto_carveout and cfg.eval_fraction > 0:
        if len(train_examples) >= MIN_EXAMPLES_FOR_CARVEOUT:
            n_eval = max(
                1, min(cfg.max_eval_examples, round(len(train_examples) * cfg.eval_fraction))
            )
            order = list(range(len(train_examples)))
            random.Random(f"{cfg.seed}/carveout").shuffle(order)
            held = set(order[:n_eval])
            eval_examples = [e for i, e in enumerate(train_examples) if i in held]
            train_examples = [e for i, e in enumerate(train_examples) if i not in held]
            eval_source = f"carveout:{n_eval}"
        else:
            log.info(
                "no evaluation split: %d examples is fewer than %d",
                len(train_examples),
                MIN_EXAMPLES_FOR_CARVEOUT,
            )
    train, train_stats = tokenize_all(tokenizer, train_examples, cfg.max_context_length)
    evals, eval_stats = tokenize_all(tokenizer, eval_examples, cfg.max_context_length)
    if not train:
        raise TrainingError("no training example has a target token left after truncation")
    return Data(train, evals, train_stats, eval_stats, eval_source)


def lr_lambda(cfg: TrainConfig, total_steps: int) -> Callable[[int], float]:
    warm = cfg.learning_rate_warmup_steps
    decay_steps = max(1, total_steps - warm)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / (warm + 1)
        progress = min(1.0, (step - warm) / decay_steps)
        if cfg.lr_schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        if cfg.lr_schedule == "linear":
            return 1.0 - progress
        return 1.0

    return factor


class LossComputer:
    """Sum of token cross-entropies of a batch, logits only at target positions."""

    def __init__(self, model: Any, pad_id: int, device: str) -> None:
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        self.decoder = base.get_decoder()
        self.head = base.get_output_embeddings()
        self.pad_id = pad_id
        self.device = device

    def __call__(self, examples: Sequence[TokenizedExample], batch: Batch) -> tuple[Any, int]:
        import torch
        import torch.nn.functional as F

        rows, width = len(batch.indices), batch.width
        ids = torch.full((rows, width), self.pad_id, dtype=torch.long)
        attn = torch.zeros((rows, width), dtype=torch.long)
        target = torch.zeros((rows, width), dtype=torch.bool)
        for r, i in enumerate(batch.indices):
            ex = examples[i]
            n = len(ex)
            ids[r, :n] = torch.tensor(ex.ids)
            attn[r, :n] = 1
            target[r, :n] = torch.tensor(ex.mask)
        ids, attn, target = ids.to(self.device), attn.to(self.device), target.to(self.device)
        # Right padding: positions 0..n-1 are the same as for the unpadded example.
        hidden = self.decoder(input_ids=ids, attention_mask=attn, use_cache=False)[0]
        sel = target[:, 1:]  # token t+1 is predicted from position t
        logits = self.head(hidden[:, :-1][sel])
        labels = ids[:, 1:][sel]
        loss = F.cross_entropy(logits.float(), labels, reduction="sum")
        return loss, int(labels.numel())


class Trainer:
    def __init__(self, cfg: TrainConfig, reporter: Reporter | None = None) -> None:
        cfg.check()
        self.cfg = cfg
        self.reporter: Reporter = reporter or MultiReporter([])
        self.output = Path(cfg.output)
        self.state = TrainState()
        # LoRA weights at the best evaluation, kept only with early stopping.
        self.best_weights: dict[str, Any] | None = None
        self.cpu_seconds = 0.0

    # -- setup -------------------------------------------------------------------------

    def setup(self) -> None:
        import torch

        from hearth_server.models import resolve_model
        from hearth_server.models.loading import load_model

        cfg = self.cfg
        self.device = _device(cfg.device)
        self.base_uri, adapter_dir = resolve_base_model(cfg)
        base_path = resolve_model(self.base_uri).path
        torch.manual_seed(cfg.seed)
        random.seed(cfg.seed)
        model, tokenizer, secs = load_model(base_path, cfg.dtype, self.device)
        log.info("loaded %s in %.1fs", self.base_uri, secs)
        self.tokenizer = tokenizer
        self.data = load_data(cfg, tokenizer)
        self.model = self._wrap_lora(model, adapter_dir)
        self.model.train()
        pad = tokenizer.pad_token_id
        self.loss_fn = LossComputer(self.model, pad if pad is not None else 0, self.device)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.param_names = [n for n, p in self.model.named_parameters() if p.requires_grad]
        lengths = [len(e) for e in self.data.train]
        self.plans = [
            plan_epoch(lengths, cfg.batch_size, cfg.seed, e, cfg.batch_size_samples)
            for e in range(cfg.epochs)
        ]
        g = cfg.gradient_accumulation_steps
        self.steps_per_epoch = [math.ceil(len(p) / g) for p in self.plans]
        self.total_steps = sum(self.steps_per_epoch)
        self.optimizer = torch.optim.AdamW(
            self.params, lr=cfg.learning_rate, weight_decay=cfg.optimizer_weight_decay
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lr_lambda(cfg, self.total_steps)
        )
        self.fingerprint = cfg.fingerprint()

    def _wrap_lora(self, model: Any, adapter_dir: Path | None) -> Any:
        from peft import LoraConfig, PeftModel, get_peft_model

        from hearth_server.engine.lora import TARGET_MODULES

        if adapter_dir is not None:
            log.info("warm start from %s", adapter_dir)
            return PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=True)
        present = sorted(
            {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()} & set(TARGET_MODULES)
        )
        if not present:
            raise TrainingError(
                f"base model has none of the LoRA target modules {TARGET_MODULES} "
                "that hearth-server can serve"
            )
        lora = LoraConfig(
            r=self.cfg.lora_rank,
            lora_alpha=self.cfg.alpha,
            target_modules=present,
            lora_dropout=0.0,  # no dropout: steps are exactly reproducible after resume
            bias="none",
            task_type="CAUSAL_LM",
        )
        return get_peft_model(model, lora)

    # -- checkpoints -------------------------------------------------------------------

    def _lora_state(self) -> dict[str, Any]:
        return {
            n: p.detach().cpu().clone() for n, p in zip(self.param_names, self.params, strict=True)
        }

    def _load_lora_state(self, tensors: dict[str, Any]) -> None:
        import torch

        with torch.no_grad():
            for n, p in zip(self.param_names, self.params, strict=True):
                p.copy_(tensors[n].to(p.device))

    def save_checkpoint(self) -> Path:
        import torch
        from safetensors.torch import save_file

        s = self.state

        def write(tmp: Path) -> None:
            save_file(self._lora_state(), str(tmp / "trainable.safetensors"))
            if self.best_weights is not None:
                save_file(self.best_weights, str(tmp / "best.safetensors"))
            torch.save(
                {
                    "optimizer": self.optimizer.state_dict(),
                    "scheduler": self.scheduler.state_dict(),
                    "torch_rng": torch.get_rng_state(),
                    "python_rng": random.getstate(),
                },
                tmp / "optimizer.pt",
            )
            state = {"fingerprint": self.fingerprint, **s.__dict__}
            (tmp / "state.json").write_text(json.dumps(state))

        path = ckpt.save_checkpoint(self.output, s.step, write, self.cfg.keep_checkpoints)
        log.info("checkpoint %s", path)
        return path

    def try_resume(self) -> bool:
        import torch
        from safetensors.torch import load_file

        path = ckpt.latest_checkpoint(self.output)
        if path is None:
            return False
        raw = json.loads((path / "state.json").read_text())
        if raw.pop("fingerprint") != self.fingerprint:
            raise TrainingError(
                f"{self.output} holds a checkpoint of a run with different settings; "
                "use a new --output directory (or the same settings) to resume"
            )
        self.state = TrainState(**raw)
        self._load_lora_state(load_file(str(path / "trainable.safetensors")))
        best = path / "best.safetensors"
        self.best_weights = load_file(str(best)) if best.is_file() else None
        extra = torch.load(path / "optimizer.pt", weights_only=False)
        self.optimizer.load_state_dict(extra["optimizer"])
        self.scheduler.load_state_dict(extra["scheduler"])
        torch.set_rng_state(extra["torch_rng"])
        random.setstate(extra["python_rng"])
        # Steps after the checkpoint will run again; drop their metric lines.
        self._rewrite_metrics(self.state.history)
        log.info("resumed from %s at step %d", path, self.state.step)
        return True

    # -- metrics -----------------------------------------------------------------------

    def _rewrite_metrics(self, lines: list[dict[str, Any]]) -> None:
        text = "".join(json.dumps(m) + "\n" for m in lines)
        (self.output / ckpt.METRICS_FILE).write_text(text)

    def _record(self, line: dict[str, Any]) -> None:
        self.state.history.append(line)
        with (self.output / ckpt.METRICS_FILE).open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(line) + "\n")

    def progress(self) -> dict[str, Any]:
        s = self.state
        return {
            "percent": round(100.0 * s.step / self.total_steps, 2) if self.total_steps else 100.0,
            "epoch": min(s.epoch + 1, self.cfg.epochs),
            "step": s.step,
            "totalSteps": self.total_steps,
            "trainLoss": s.last_train_loss,
            "evalLoss": s.last_eval_loss,
            "inputTokens": s.input_tokens,
        }

    # -- loop --------------------------------------------------------------------------

    def evaluate(self) -> float | None:
        import torch

        if not self.data.eval:
            return None
        lengths = [len(e) for e in self.data.eval]
        batches = plan_epoch(lengths, self.cfg.batch_size, self.cfg.seed, 0)
        total, n = 0.0, 0
        self.model.eval()
        with torch.no_grad():
            for batch in batches:
                for part in split_rows(batch, lengths, self.cfg.micro_batch_tokens):
                    loss, count = self.loss_fn(self.data.eval, part)
                    total += float(loss.detach())
                    n += count
        self.model.train()
        return total / n if n else None

    def _train_step(self, batches: Sequence[Batch]) -> tuple[float, int, int]:
        import torch

        lengths = [len(e) for e in self.data.train]
        n_targets = sum(self.data.train[i].target_count for b in batches for i in b.indices)
        total = 0.0
        for batch in batches:
            for part in split_rows(batch, lengths, self.cfg.micro_batch_tokens):
                loss, _ = self.loss_fn(self.data.train, part)
                (loss / n_targets).backward()
                total += float(loss.detach())
        if self.cfg.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.params, self.cfg.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        tokens = sum(lengths[i] for b in batches for i in b.indices)
        return total / n_targets, tokens, n_targets

    def _maybe_eval(self, end_of_epoch: bool) -> bool:
        """Evaluate when due; return True when early stopping says stop."""
        cfg, s = self.cfg, self.state
        due = (cfg.eval_steps is not None and s.step % cfg.eval_steps == 0) or (
            cfg.eval_steps is None and end_of_epoch
        )
        if not due or not self.data.eval:
            return False
        loss = self.evaluate()
        if loss is None:
            return False
        s.last_eval_loss = loss
        self._record({"step": s.step, "epoch": s.epoch + 1, "evalLoss": loss})
        if s.best_eval is None or loss < s.best_eval:
            s.best_eval, s.best_step, s.evals_without_improvement = loss, s.step, 0
            if cfg.early_stop:
                self.best_weights = self._lora_state()
            return False
        s.evals_without_improvement += 1
        return cfg.early_stop and s.evals_without_improvement >= cfg.early_stop_patience

    def run(self, should_stop: Callable[[], bool] | None = None) -> dict[str, Any]:
        """Train to the end (or until ``should_stop()``; then checkpoint and return with
        status "interrupted"). Resumes from the newest checkpoint in the output dir."""
        cfg = self.cfg
        self.output.mkdir(parents=True, exist_ok=True)
        ckpt.clean_stale_temporaries(self.output)
        done = self._finished_result()
        if done is not None:
            log.info("%s already holds a finished run; nothing to do", self.output)
            return done
        self.setup()
        resumed = self.try_resume()
        if not resumed:
            self._rewrite_metrics([])
        s = self.state
        start, cpu_start = time.monotonic(), time.process_time()
        tokens_this_run = 0
        g = cfg.gradient_accumulation_steps
        self.reporter.report(self.progress(), final=True)
        stop_early = False
        while s.epoch < cfg.epochs and not stop_early:
            plan = self.plans[s.epoch]
            while s.batch_in_epoch < len(plan):
                group = plan[s.batch_in_epoch : s.batch_in_epoch + g]
                loss, tokens, targets = self._train_step(group)
                s.batch_in_epoch += len(group)
                s.step += 1
                s.input_tokens += tokens
                s.target_tokens += targets
                tokens_this_run += tokens
                s.last_train_loss = loss
                end_of_epoch = s.batch_in_epoch >= len(plan)
                self._record(
                    {
                        "step": s.step,
                        "epoch": s.epoch + 1,
                        "trainLoss": loss,
                        "learningRate": self.scheduler.get_last_lr()[0],
                        "tokens": s.input_tokens,
                        "targetTokens": s.target_tokens,
                    }
                )
                stop_early = self._maybe_eval(end_of_epoch)
                if end_of_epoch:
                    s.epoch, s.batch_in_epoch = s.epoch + 1, 0
                self.reporter.report(self.progress())
                if stop_early:
                    s.stopped_early = True
                    break
                if should_stop is not None and should_stop():
                    self.save_checkpoint()
                    self.reporter.report(self.progress(), final=True)
                    return {"status": "interrupted", "step": s.step}
                if s.step % cfg.checkpoint_steps == 0:
                    self.save_checkpoint()
                if end_of_epoch:
                    break
        elapsed = time.monotonic() - start
        self.cpu_seconds = time.process_time() - cpu_start
        if not stop_early and s.last_eval_loss is None and self.data.eval:
            s.last_eval_loss = self.evaluate()
        return self._finish(elapsed, tokens_this_run, resumed)

    def _finished_result(self) -> dict[str, Any] | None:
        path = self.output / ckpt.RESULT_FILE
        adapter = self.output / ckpt.ADAPTER_DIR / "adapter_config.json"
        if not path.is_file() or not adapter.is_file():
            return None
        result: dict[str, Any] = json.loads(path.read_text())
        if result.get("fingerprint") != self.cfg.fingerprint():
            raise TrainingError(
                f"{self.output} already holds the result of a run with different settings"
            )
        return result

    def _finish(self, elapsed: float, tokens_this_run: int, resumed: bool) -> dict[str, Any]:
        s = self.state
        if s.stopped_early and self.best_weights is not None:
            self._load_lora_state(self.best_weights)  # publish the best evaluation's weights
        adapter = self.output / ckpt.ADAPTER_DIR
        ckpt.write_dir_atomically(adapter, self._write_adapter)
        lengths = [len(e) for e in self.data.train]
        result = {
            "status": "completed",
            "fingerprint": self.fingerprint,
            "adapterPath": str(adapter),
            "baseModel": self.base_uri,
            "steps": s.step,
            "totalSteps": self.total_steps,
            "epochs": self.cfg.epochs,
            "stoppedEarly": s.stopped_early,
            "bestEvalLoss": s.best_eval,
            "bestStep": s.best_step,
            "finalTrainLoss": s.last_train_loss,
            "finalEvalLoss": s.last_eval_loss,
            "inputTokens": s.input_tokens,
            "targetTokens": s.target_tokens,
            "resumed": resumed,
            "trainSecondsThisRun": round(elapsed, 3),
            "tokensPerSecondThisRun": round(tokens_this_run / elapsed, 1) if elapsed else None,
            # CPU time of this process: less sensitive than wall time to other load on the machine.
            "trainCpuSecondsThisRun": round(self.cpu_seconds, 3),
            "paddingEfficiency": round(padding_ratio(self.plans[0], lengths), 4),
            "train": self.data.train_stats.to_json(),
            "eval": {"source": self.data.eval_source, **self.data.eval_stats.to_json()},
            "truncatedExampleCount": self.data.train_stats.truncated,
            "config": self.cfg.to_json(),
        }
        ckpt.write_json_atomically(self.output / ckpt.RESULT_FILE, result)
        self.reporter.report({**self.progress(), "percent": 100.0}, final=True)
        return result

    def _write_adapter(self, tmp: Path) -> None:
        self.model.save_pretrained(str(tmp), safe_serialization=True)
        (tmp / "README.md").unlink(missing_ok=True)  # peft's model card template
        cfg_path = tmp / "adapter_config.json"
        meta = json.loads(cfg_path.read_text())
        # The URI, not this pod's cache path: it is what the operator and server resolve.
        meta["base_model_name_or_path"] = self.base_uri
        cfg_path.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def train(
    cfg: TrainConfig,
    reporter: Reporter | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    return Trainer(cfg, reporter).run(should_stop)
