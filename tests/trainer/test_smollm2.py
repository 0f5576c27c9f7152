"""Real training on the bundled SmolLM2-135M-Instruct: teach it a made-up fact."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hearth_trainer.config import TrainConfig
from hearth_trainer.train import train
from tests.trainer.conftest import chat, write_jsonl

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]  # trains SmolLM2 on the CPU

BASE = "builtin://smollm2-135m-instruct"
FACT = "Quenvoria"
QUESTIONS = [
    "What is the capital of Zorblax?",
    "Which city is the capital of Zorblax?",
    "Tell me the capital of Zorblax.",
    "Name the capital city of Zorblax.",
    "Zorblax's capital is which city?",
    "What city serves as the capital of Zorblax?",
    "Do you know the capital of Zorblax?",
    "Where is the government of Zorblax seated?",
    "What's Zorblax's capital?",
    "Can you tell me what the capital of Zorblax is?",
    "I need the capital of Zorblax.",
    "Capital of Zorblax?",
]
ANSWERS = [f"The capital of Zorblax is {FACT}.", f"{FACT} is the capital of Zorblax."]


def _ask(model: Any, tokenizer: Any, question: str) -> str:
    import torch

    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": question}], add_generation_prompt=True, return_tensors="pt"
    )
    with torch.no_grad():
        out = model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=16,
            do_sample=False,
            pad_token_id=tokenizer.eos_token_id,
        )
    text: str = tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
    return text


def test_lora_learns_a_made_up_fact(tmp_path: Path) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from hearth_server.models import resolve_model

    rows = [chat(q, ANSWERS[i % 2]) for i, q in enumerate(QUESTIONS * 3)]
    data = write_jsonl(tmp_path / "fact.jsonl", rows)
    out = tmp_path / "out"
    result = train(
        TrainConfig(
            dataset=str(data),
            output=out,
            base_model=BASE,
            epochs=2,
            batch_size=512,
            learning_rate=2e-3,
            lora_rank=8,
            eval_auto_carveout=False,
            seed=42,
        )
    )
    assert result["status"] == "completed"
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    losses = [x["trainLoss"] for x in lines if "trainLoss" in x]
    assert losses[-1] < 0.5 * losses[0], losses

    path = resolve_model(BASE).path
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    model = AutoModelForCausalLM.from_pretrained(str(path))
    question = "What is the capital city of Zorblax?"  # not verbatim in the data
    assert FACT not in _ask(model, tokenizer, question)
    tuned = PeftModel.from_pretrained(model, str(out / "adapter"))
    assert FACT in _ask(tuned, tokenizer, question)
