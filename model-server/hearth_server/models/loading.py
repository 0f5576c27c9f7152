"""Load a resolved Hugging Face directory into a model and tokenizer, at a precision."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

DTYPES = ("auto", "float32", "bfloat16", "float16")
PRECISIONS = ("auto", "fp32", "fp16", "bf16", "int8", "int4")
_PRECISION_DTYPE = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


@dataclass(frozen=True)
class LoadPlan:
    """How to load: the float dtype of the model, and whether its linears go to int8 or
    int4."""

    dtype: str
    int8: bool = False
    int4: bool = False


def plan_precision(precision: str, dtype: str = "auto", device: str = "cpu") -> LoadPlan:
    """``--precision`` and ``--dtype`` -> a LoadPlan; ValueError naming the flag when the
    combination cannot be honoured.

    ``--precision`` wins; ``--dtype`` alone keeps working (``--precision auto``). Both
    given and disagreeing is refused rather than one silently ignored.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"--precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if dtype not in DTYPES:
        raise ValueError(f"--dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if precision == "auto":
        return LoadPlan(dtype)
    if precision in ("int8", "int4"):
        if device != "cpu":
            raise ValueError(
                f"--precision {precision} is served on CPU only (weight-only {precision} "
                f"kernels), not on {device}; use --precision bf16 or fp16 there"
            )
        if dtype not in ("auto", "float32"):
            raise ValueError(
                f"--precision {precision} computes in float32; --dtype {dtype} disagrees (drop it)"
            )
        return LoadPlan("float32", int8=precision == "int8", int4=precision == "int4")
    wanted = _PRECISION_DTYPE[precision]
    if dtype not in ("auto", wanted):
        raise ValueError(f"--precision {precision} and --dtype {dtype} disagree; give one of them")
    return LoadPlan(wanted)


def torch_dtype(name: str, device: str = "cpu") -> Any:
    import torch

    if name not in DTYPES:
        raise ValueError(f"--dtype must be one of {', '.join(DTYPES)}, got {name!r}")
    if name == "auto":
        # fp32 on CPU: half-precision matmuls are slow or inexact on most CPUs.
        return torch.float32 if device == "cpu" else torch.bfloat16
    return getattr(torch, name)


def load_model(
    path: Path, dtype: str = "auto", device: str = "cpu", precision: str = "auto"
) -> tuple[Any, Any, float]:
    """Return (model, tokenizer, seconds) for a directory in Hugging Face layout."""
    import transformers

    plan = plan_precision(precision, dtype, device)
    hf: Any = transformers  # untyped entry points
    start = time.monotonic()
    model = hf.AutoModelForCausalLM.from_pretrained(
        str(path), dtype=torch_dtype(plan.dtype, device), low_cpu_mem_usage=True
    )
    model.to(device)
    model.eval()
    if plan.int8 or plan.int4:
        from hearth_server.models.quantize import quantize_linears

        bits = 8 if plan.int8 else 4
        log.info(
            "quantised %d linear layers to int%d (weight-only)",
            quantize_linears(model, bits),
            bits,
        )
    tokenizer = hf.AutoTokenizer.from_pretrained(str(path))
    return model, tokenizer, time.monotonic() - start
