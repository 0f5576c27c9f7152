"""Build a ready engine from settings (model resolution, loading, logging of timings)."""

from __future__ import annotations

import logging
import time

from hearth_server.config import ServerSettings
from hearth_server.engine.engine import Engine, EngineConfig
from hearth_server.models import resolve_model
from hearth_server.models.loading import load_model

log = logging.getLogger("hearth_server")


def engine_config(settings: ServerSettings, model_max_len: int) -> EngineConfig:
    max_len = settings.max_model_len or min(model_max_len, 4096)
    if max_len > model_max_len:
        raise ValueError(f"--max-model-len {max_len} exceeds the model's context {model_max_len}")
    return EngineConfig(
        max_model_len=max_len,
        max_num_seqs=settings.max_num_seqs,
        max_num_batched_tokens=settings.max_num_batched_tokens,
        kv_cache_tokens=max(settings.kv_cache_tokens, max_len),
        prefix_cache_tokens=settings.prefix_cache_tokens,
        max_waiting=settings.max_waiting,
        max_loras=settings.max_loras,
        max_cpu_loras=max(settings.max_cpu_loras, settings.max_loras),
        max_lora_rank=settings.max_lora_rank,
    )


def resolve_device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: no CUDA device is available")
    return name


def set_threads(requested: int | None) -> int:
    """Set torch's intra-op threads: ``requested``, or what the process may really use."""
    import torch

    from hearth_server.cpu_threads import default_threads

    if requested is not None:
        threads, why = requested, "--threads"
    else:
        threads, why = default_threads()
    torch.set_num_threads(threads)
    log.info("torch uses %d CPU threads (%s)", threads, why)
    return threads


def load_engine(settings: ServerSettings, start: bool = True) -> tuple[Engine, str]:
    """Resolve, load and (with ``start``) start the engine thread; returns the engine and
    the local model directory."""
    t0 = time.monotonic()
    resolved = resolve_model(settings.model, "model")
    log.info(
        "resolved %s -> %s (%s%s) in %.1fs",
        settings.model,
        resolved.path,
        resolved.source,
        f", {resolved.note}" if resolved.note else "",
        resolved.seconds,
    )
    device = resolve_device(settings.device)
    set_threads(settings.threads)
    model, tokenizer, seconds = load_model(
        resolved.path, settings.dtype, device, settings.precision
    )
    n_params = sum(p.numel() for p in model.parameters())
    log.info(
        "loaded %s: %.1fM parameters, dtype %s, device %s, in %.1fs",
        resolved.path,
        n_params / 1e6,
        next(model.parameters()).dtype,
        device,
        seconds,
    )
    config = engine_config(settings, int(getattr(model.config, "max_position_embeddings", 4096)))
    engine = Engine(model, tokenizer, config)
    if start:
        engine.start()
    log.info(
        "engine ready in %.1fs total: max_model_len=%d max_num_seqs=%d max_loras=%d "
        "max_cpu_loras=%d max_lora_rank=%d",
        time.monotonic() - t0,
        config.max_model_len,
        config.max_num_seqs,
        config.max_loras,
        config.max_cpu_loras,
        config.max_lora_rank,
    )
    return engine, str(resolved.path)
