"""Turn a model or adapter URI into a local directory in Hugging Face layout.

Accepted forms: a local path, ``file:///abs/path``, ``pvc://claim/sub/path`` (under
``$HEARTH_PVC_ROOT``, default ``/mnt/pvc``), ``hf://org/repo[@revision]`` and
``builtin://<name>``.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from hearth_server.models import builtin

log = logging.getLogger(__name__)

Kind = Literal["model", "adapter"]

BUILTIN_MODELS: tuple[str, ...] = tuple(builtin.BUILTINS)

# Files we need from a hub repository; weights in other formats are skipped.
_HF_PATTERNS = [
    "*.json",
    "*.safetensors",
    "*.model",
    "*.txt",
    "*.jinja",
    "tokenizer*",
]


class ModelResolutionError(Exception):
    """A URI could not be turned into a usable local directory; the message says why."""


@dataclass(frozen=True)
class ResolvedModel:
    uri: str
    path: Path
    source: str  # "local", "pvc", "hf", "builtin"
    seconds: float
    note: str = ""


def cache_dir() -> Path:
    """Where converted builtin models and hub downloads live."""
    env = os.environ.get("HEARTH_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "hearth"


def pvc_root() -> Path:
    return Path(os.environ.get("HEARTH_PVC_ROOT", "/mnt/pvc"))


def _split(uri: str) -> tuple[str, str]:
    scheme, sep, rest = uri.partition("://")
    return (scheme, rest) if sep else ("local", uri)


def local_path(uri: str) -> Path | None:
    """The directory a local, ``file://`` or ``pvc://`` URI names, without looking at the
    filesystem; None for schemes that fetch or build (``hf://``, ``builtin://``).
    Raises :class:`ModelResolutionError` for malformed URIs and unknown schemes."""
    scheme, rest = _split(uri)
    if scheme == "pvc":
        return _from_pvc(rest, uri)
    if scheme in ("file", "local"):
        return Path(rest).expanduser()
    if scheme in ("hf", "builtin"):
        return None
    raise ModelResolutionError(
        f"unsupported URI scheme {scheme!r} in {uri!r}; "
        "use a local path, file://, pvc://, hf:// or builtin://"
    )


def resolve_model(uri: str, kind: Kind = "model") -> ResolvedModel:
    """Resolve ``uri`` to a directory holding ``config.json`` (model) or
    ``adapter_config.json`` (adapter). Raises :class:`ModelResolutionError`."""
    if not uri or not uri.strip():
        raise ModelResolutionError(f"empty {kind} URI")
    start = time.monotonic()
    scheme, rest = _split(uri)
    if scheme == "builtin":
        if kind != "model":
            raise ModelResolutionError(f"builtin:// names a base model, not an {kind}: {uri!r}")
        path, note = builtin.materialize(rest, cache_dir())
        source = "builtin"
    elif scheme == "hf":
        path, note = _from_hub(rest, uri), "downloaded or found in the hub cache"
        source = "hf"
    else:
        local = local_path(uri)
        assert local is not None
        path = local
        note, source = (f"under {pvc_root()}", "pvc") if scheme == "pvc" else ("", "local")
    _check_layout(path, kind, uri)
    return ResolvedModel(uri, path.resolve(), source, time.monotonic() - start, note)


def _check_layout(path: Path, kind: Kind, uri: str) -> None:
    if not path.is_dir():
        raise ModelResolutionError(f"{kind} {uri!r}: directory {str(path)!r} does not exist")
    marker = "config.json" if kind == "model" else "adapter_config.json"
    if not (path / marker).is_file():
        raise ModelResolutionError(f"{kind} {uri!r}: {marker} missing in {str(path)!r}")


def _from_pvc(rest: str, uri: str) -> Path:
    claim, _, sub = rest.partition("/")
    if not claim:
        raise ModelResolutionError(f"{uri!r}: expected pvc://<claim>/<path>")
    root = pvc_root().resolve()
    path = (root / claim / sub).resolve()
    if not path.is_relative_to(root):
        raise ModelResolutionError(f"{uri!r} escapes the PVC mount root {str(root)!r}")
    return path


def _from_hub(rest: str, uri: str) -> Path:
    repo_id, _, revision = rest.partition("@")
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise ModelResolutionError(f"{uri!r}: expected hf://<org>/<repo>[@<revision>]")
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:  # pragma: no cover - huggingface_hub comes with transformers
        raise ModelResolutionError("hf:// needs the huggingface_hub package") from exc
    try:
        local = snapshot_download(
            repo_id=repo_id,
            revision=revision or None,
            cache_dir=str(cache_dir() / "hf"),
            allow_patterns=_HF_PATTERNS,
        )
    except Exception as exc:
        offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
        hint = " (HF_HUB_OFFLINE is set)" if offline else " (is the hub reachable from here?)"
        raise ModelResolutionError(
            f"could not download {uri!r} from the Hugging Face hub{hint}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    return Path(local)
