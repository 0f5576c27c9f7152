"""Load a resolved Hugging Face directory into a model and tokenizer."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

DTYPES = ("auto", "float32", "bfloat16", "float16")


def torch_dtype(name: str, device: str = "cpu") -> Any:
    import torch

    if name not in DTYPES:
        raise ValueError(f"--dtype must be one of {', '.join(DTYPES)}, got {name!r}")
    if name == "auto":
        # fp32 on CPU: half-precision matmuls are slow or inexact on most CPUs.
        return torch.float32 if device == "cpu" else torch.bfloat16
    return getattr(torch, name)


def load_model(path: Path, dtype: str = "auto", device: str = "cpu") -> tuple[Any, Any, float]:
    """Return (model, tokenizer, seconds) for a directory in Hugging Face layout."""
    import transformers

    hf: Any = transformers  # untyped entry points
    start = time.monotonic()
    model = hf.AutoModelForCausalLM.from_pretrained(
        str(path), dtype=torch_dtype(dtype, device), low_cpu_mem_usage=True
    )
    model.to(device)
    model.eval()
    tokenizer = hf.AutoTokenizer.from_pretrained(str(path))
    return model, tokenizer, time.monotonic() - start
