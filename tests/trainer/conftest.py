"""Fixtures for the trainer tests: a tiny random llama (shared with the server tests)
and helpers that write JSONL datasets. Nothing is downloaded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("peft")

from hearth_server.models.tiny import build_tiny_model_dir


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model_dir(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_dir: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_dir))


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    lines = [r if isinstance(r, str) else json.dumps(r) for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def chat(user: str, assistant: str, **extra: Any) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "user", "content": user},
            {"role": "assistant", "content": assistant},
        ],
        **extra,
    }


def arithmetic_rows(n: int) -> list[dict[str, Any]]:
    """Examples of varied length, so batching has something to group."""
    return [chat(f"What is {i} plus one? " * (1 + i % 5), f"It is {i + 1}.") for i in range(n)]
