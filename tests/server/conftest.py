"""Fixtures for the model-server tests.

The fast layer uses a tiny randomly initialised llama and a byte-level BPE tokenizer
trained here in a second; nothing is downloaded. The real layer (``slow``) starts
``hearth-server serve builtin://smollm2-135m-instruct`` once per session.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("fastapi")

from hearth_server.engine.engine import Engine, EngineConfig, Sequence  # noqa: E402
from hearth_server.engine.handle import EngineHandle  # noqa: E402
from hearth_server.engine.params import SamplingParams, StepOutput  # noqa: E402
from hearth_server.models.tiny import build_tiny_model_dir  # noqa: E402


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model_dir(tmp_path_factory.mktemp("tiny-llama"))


def make_adapter(model_dir: Path, out: Path, seed: int, rank: int = 8, scale: float = 1.0) -> Path:
    """A PEFT LoRA with non-zero A and B on every projection, saved as safetensors."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from hearth_server.engine.lora import TARGET_MODULES

    base = AutoModelForCausalLM.from_pretrained(model_dir)
    torch.manual_seed(seed)
    cfg = LoraConfig(
        r=rank,
        lora_alpha=rank,
        target_modules=list(TARGET_MODULES),
        init_lora_weights=False,  # random B too, so the adapter changes outputs
    )
    peft_model = get_peft_model(base, cfg)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_" in name:
                p.mul_(scale)
    peft_model.save_pretrained(str(out))
    return out


@pytest.fixture(scope="session")
def tiny_adapters(tiny_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("adapters")
    return {
        "alpha": make_adapter(tiny_dir, root / "alpha", seed=1),
        "beta": make_adapter(tiny_dir, root / "beta", seed=2, rank=4),
    }


def load_tiny(tiny_dir: Path) -> tuple[Any, Any]:
    from hearth_server.models.loading import load_model

    model, tok, _ = load_model(tiny_dir)
    return model, tok


@pytest.fixture
def make_engine(tiny_dir: Path) -> Iterator[Any]:
    engines: list[Engine] = []

    def factory(**overrides: int) -> Engine:
        model, tok = load_tiny(tiny_dir)
        cfg = EngineConfig(max_model_len=128, max_num_seqs=8, max_loras=2, max_cpu_loras=2)
        for k, v in overrides.items():
            setattr(cfg, k, v)
        engine = Engine(model, tok, cfg)
        engine.start()
        engines.append(engine)
        return engine

    yield factory
    for e in engines:
        e.shutdown()


@dataclass
class Collected:
    outputs: list[StepOutput] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def tokens(self) -> list[int]:
        return [t for o in self.outputs for t in o.token_ids]

    @property
    def text(self) -> str:
        return "".join(o.text for o in self.outputs)

    @property
    def final(self) -> StepOutput:
        return self.outputs[-1]

    def emit(self, out: StepOutput) -> None:
        self.outputs.append(out)
        if out.finished:
            self.done.set()


def submit(
    engine: EngineHandle, prompt: list[int], params: SamplingParams, adapter: str | None = None
) -> tuple[Sequence, Collected]:
    col = Collected()
    seq = Sequence(prompt, params, col.emit, adapter=adapter)
    engine.submit(seq)
    return seq, col


def generate(
    engine: EngineHandle,
    prompts: list[list[int]],
    params: SamplingParams,
    adapters: list[str | None] | None = None,
) -> list[Collected]:
    """Submit all prompts at once (one batch) and wait for all of them."""
    adapters = adapters or [None] * len(prompts)
    cols = [submit(engine, p, params, a)[1] for p, a in zip(prompts, adapters, strict=True)]
    for c in cols:
        assert c.done.wait(60), "engine did not finish in time"
    return cols
