"""Handles /v1/models, /v1/load_lora_adapter and /v1/unload_lora_adapter.

Load and unload are atomic per adapter name (one asyncio.Lock each) and idempotent:
loading the same name from the same URI again, or unloading a name that is not
loaded, succeeds without doing anything.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

from hearth_server.api.errors import ErrorResponse, bad_request
from hearth_server.api.openai.models.capabilities import capabilities
from hearth_server.api.openai.models.protocol import (
    LoadLoRAAdapterRequest,
    UnloadLoRAAdapterRequest,
)
from hearth_server.api.state import ServerState
from hearth_server.engine.lora import AdapterError
from hearth_server.models import (
    ModelResolutionError,
    ResolvedModel,
    cache_dir,
    local_path,
    pvc_root,
    resolve_model,
)

log = logging.getLogger(__name__)


def list_models(state: ServerState) -> dict[str, Any]:
    s = state.settings
    created = int(time.time())
    base = s.model_name
    engine = state.engine
    tokenizer = engine.tokenizer if engine is not None else None
    length = state.max_model_len if engine is not None else None
    cards = [
        {
            "id": base,
            "object": "model",
            "created": created,
            "owned_by": "hearth",
            "root": state.model_root or s.model,
            "parent": None,
            "max_model_len": length,
            **capabilities(tokenizer, length, adapter=False),
        }
    ]
    if state.engine is not None:
        for info in state.engine.adapter_list():
            cards.append(
                {
                    "id": info.name,
                    "object": "model",
                    "created": int(info.loaded_at),
                    "owned_by": "hearth",
                    "root": info.uri,
                    "parent": base,
                    "max_model_len": state.max_model_len,
                    **capabilities(tokenizer, length, adapter=True),
                }
            )
    return {"object": "list", "data": cards}


def adapter_roots(state: ServerState) -> list[Path]:
    """Directories POST /v1/load_lora_adapter may read: the hearth cache (hf:// downloads,
    builtin conversions), the PVC mount root (pvc://), the base model's directory and
    every --adapter-root."""
    roots = [cache_dir(), pvc_root(), *map(Path, state.settings.adapter_roots)]
    if state.model_root:
        roots.append(Path(state.model_root))
    return [r.expanduser().resolve() for r in roots]


def _within(path: Path, roots: list[Path]) -> bool:
    return any(path.is_relative_to(root) for root in roots)


def _no_adapter(uri: str) -> ModelResolutionError:
    # One message for "missing" and "outside the roots": a client must not learn from
    # it whether some directory exists elsewhere on the server.
    return ModelResolutionError(
        f"no adapter directory at {uri!r} inside the allowed adapter roots "
        "(the model cache, the PVC mount, the base model's directory and --adapter-root)"
    )


def resolve_confined(uri: str, roots: list[Path]) -> ResolvedModel:
    """resolve_model for an adapter named by a client, refused outside ``roots``. The
    confinement is checked on the symlink-resolved path before anything is read."""
    try:
        local = local_path(uri)
        if local is not None:
            path = local.resolve()
            if not _within(path, roots) or not (path / "adapter_config.json").is_file():
                raise _no_adapter(uri)
        resolved = resolve_model(uri, "adapter")
    except (OSError, ValueError) as exc:  # a NUL byte, a name too long, ...
        raise _no_adapter(uri) from exc
    if not _within(resolved.path, roots):  # e.g. a hub cache outside the roots
        raise _no_adapter(uri)
    return resolved


async def load_lora_adapter(
    state: ServerState, req: LoadLoRAAdapterRequest, confined: bool = True
) -> ErrorResponse | dict[str, Any]:
    """Load an adapter. ``confined``: refuse paths outside adapter_roots (every HTTP
    request; only --lora flags, which the operator of the server chose, are trusted)."""
    engine = state.engine
    assert engine is not None
    name = req.lora_name
    if name in (state.settings.model_name, state.settings.model):
        return bad_request(f"{name!r} is the base model's name", "lora_name")
    async with state.adapter_locks[name]:
        existing = engine.adapter_info(name)
        if existing is not None:
            if existing.uri == req.lora_path:
                return {"status": "already_loaded", "lora_name": name}
            return bad_request(
                f"adapter {name!r} is already loaded from {existing.uri!r}; unload it first",
                "lora_name",
            )
        start = time.monotonic()
        try:
            if confined:
                roots = adapter_roots(state)
                resolved = await asyncio.to_thread(resolve_confined, req.lora_path, roots)
            else:
                resolved = await asyncio.to_thread(resolve_model, req.lora_path, "adapter")
            info, nbytes = await asyncio.to_thread(
                engine.add_adapter, name, req.lora_path, resolved.path
            )
        except (ModelResolutionError, AdapterError) as exc:
            return bad_request(str(exc), "lora_path")
        took = time.monotonic() - start
        log.info(
            "loaded LoRA adapter %s (rank %d, %.1f MB) from %s in %.2fs",
            name,
            info.rank,
            nbytes / 1e6,
            resolved.path,
            took,
        )
        return {
            "status": "loaded",
            "lora_name": name,
            "rank": info.rank,
            "seconds": round(took, 4),
        }


async def unload_lora_adapter(state: ServerState, req: UnloadLoRAAdapterRequest) -> dict[str, Any]:
    engine = state.engine
    assert engine is not None
    async with state.adapter_locks[req.lora_name]:
        removed = await asyncio.to_thread(engine.remove_adapter, req.lora_name)
        if removed:
            log.info("unloaded LoRA adapter %s", req.lora_name)
    return {"status": "unloaded" if removed else "not_loaded", "lora_name": req.lora_name}
