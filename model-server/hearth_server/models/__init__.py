"""Model and adapter resolution, shared by the server and the trainer.

Importable without FastAPI; heavy libraries (torch, transformers, huggingface_hub) are
imported lazily inside the functions that need them.
"""

from hearth_server.models.resolve import (
    BUILTIN_MODELS,
    ModelResolutionError,
    ResolvedModel,
    cache_dir,
    local_path,
    pvc_root,
    resolve_model,
)

__all__ = [
    "BUILTIN_MODELS",
    "ModelResolutionError",
    "ResolvedModel",
    "cache_dir",
    "local_path",
    "pvc_root",
    "resolve_model",
]
