"""Training settings, named like the FineTuningJob spec fields (snake_case here)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from hearth.datasets import Format

Schedule = Literal["cosine", "linear", "constant"]

#: Fields that do not change what is learned; a resumed run may differ in these.
_NOT_IN_FINGERPRINT = frozenset(
    {
        "output",
        "checkpoint_steps",
        "keep_checkpoints",
        "progress_file",
        "device",
        "micro_batch_tokens",
    }
)


@dataclass
class TrainConfig:
    dataset: str
    output: Path
    base_model: str | None = None
    warm_start_from: str | None = None
    format: Format = "CHAT"
    evaluation_dataset: str | None = None
    eval_auto_carveout: bool = True
    #: Share of the training set carved out for evaluation (at most ``max_eval_examples``).
    eval_fraction: float = 0.1
    max_eval_examples: int = 1000
    epochs: int = 1
    learning_rate: float = 1e-4
    learning_rate_warmup_steps: int = 0
    lr_schedule: Schedule = "cosine"
    lora_rank: int = 8
    lora_alpha: int | None = None  # default 2 x rank, as the FineTuningJob documents
    max_context_length: int = 8192
    batch_size: int = 32768  # tokens per batch (padded), Fireworks' batchSize
    batch_size_samples: int | None = None
    gradient_accumulation_steps: int = 1
    optimizer_weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    early_stop: bool = False
    early_stop_patience: int = 2  # evaluations without improvement before stopping
    eval_steps: int | None = None  # None: evaluate at the end of every epoch
    seed: int = 42
    checkpoint_steps: int = 50
    keep_checkpoints: int = 1
    #: Largest single forward pass in padded tokens; bigger batches are split (memory only).
    micro_batch_tokens: int = 4096
    device: str = "auto"
    dtype: str = "auto"
    progress_file: Path | None = None

    @property
    def alpha(self) -> int:
        return self.lora_alpha if self.lora_alpha is not None else 2 * self.lora_rank

    def check(self) -> None:
        """Raise ValueError naming the first bad setting."""
        if not self.base_model and not self.warm_start_from:
            raise ValueError("set --base-model or --warm-start-from")
        rules: list[tuple[bool, str]] = [
            (self.epochs >= 1, "epochs must be >= 1"),
            (0 < self.learning_rate <= 1, "learning rate must be in (0, 1]"),
            (self.learning_rate_warmup_steps >= 0, "warmup steps must be >= 0"),
            (1 <= self.lora_rank <= 256, "LoRA rank must be in 1..256"),
            (self.lora_alpha is None or self.lora_alpha >= 1, "LoRA alpha must be >= 1"),
            (self.max_context_length >= 16, "max context length must be >= 16"),
            (self.batch_size >= 16, "batch size (tokens) must be >= 16"),
            (
                self.batch_size_samples is None or self.batch_size_samples >= 1,
                "batch size samples must be >= 1",
            ),
            (self.gradient_accumulation_steps >= 1, "gradient accumulation steps must be >= 1"),
            (self.optimizer_weight_decay >= 0, "weight decay must be >= 0"),
            (0 <= self.eval_fraction < 1, "eval fraction must be in [0, 1)"),
            (self.eval_steps is None or self.eval_steps >= 1, "eval steps must be >= 1"),
            (self.early_stop_patience >= 1, "early stop patience must be >= 1"),
            (self.checkpoint_steps >= 1, "checkpoint steps must be >= 1"),
            (self.micro_batch_tokens >= 16, "micro batch tokens must be >= 16"),
        ]
        for ok, message in rules:
            if not ok:
                raise ValueError(message)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("output", "progress_file"):
            out[key] = str(out[key]) if out[key] is not None else None
        return out

    def fingerprint(self) -> str:
        """Hash of everything that shapes the result; a checkpoint only resumes a run
        with the same fingerprint."""
        data = {k: v for k, v in self.to_json().items() if k not in _NOT_IN_FINGERPRINT}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]
