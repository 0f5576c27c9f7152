"""Checks of uploaded model files before the Model object is created (pure: file reads only).

A PEFT addon needs ``adapter_config.json`` (a LoRA, its rank the one the Model declares)
and ``adapter_model.safetensors`` whose ``lora_A``/``lora_B`` shapes agree with that rank
and, when the base model's ``config.json`` is readable here, with the sizes of the base's
projection each one adapts (``q_proj`` ... ``down_proj``). A base model needs a
``config.json`` and safetensors weights (and a tokenizer unless ``configOnly``). Pickled
weights (``*.bin``, ``*.pt``) are refused: loading them runs code. Problems are a 400 (a
file is wrong) or 412 (a file is missing) naming the file.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .errors import ApiError, invalid

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
#: A safetensors header larger than this is not a header.
MAX_HEADER_BYTES = 100 * 1024 * 1024
PICKLED = (".bin", ".pt", ".pth", ".pkl", ".ckpt")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model")

Json = dict[str, Any]


def missing(what: str) -> ApiError:
    return ApiError(412, f"model files: {what}")


def read_json_file(directory: Path, name: str) -> Json:
    try:
        value = json.loads((directory / name).read_text())
    except FileNotFoundError:
        raise missing(f"{name} was not uploaded") from None
    except (ValueError, UnicodeDecodeError) as error:
        raise invalid(f"model files: {name} is not valid JSON: {error}") from None
    if not isinstance(value, dict):
        raise invalid(f"model files: {name} must hold a JSON object")
    return value


def safetensors_header(path: Path) -> dict[str, Json]:
    """The tensors a safetensors file declares (name -> dtype, shape, offsets), checked to
    lie within the file."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        raw = handle.read(8)
        if len(raw) < 8:
            raise invalid(f"model files: {path.name} is not a safetensors file (too short)")
        (length,) = struct.unpack("<Q", raw)
        if length > min(MAX_HEADER_BYTES, size - 8):
            raise invalid(f"model files: {path.name} is not a safetensors file (header size)")
        try:
            header = json.loads(handle.read(length))
        except (ValueError, UnicodeDecodeError):
            raise invalid(f"model files: {path.name}: the safetensors header is not JSON") from None
    if not isinstance(header, dict):
        raise invalid(f"model files: {path.name}: the safetensors header is not an object")
    data = size - 8 - length
    tensors: dict[str, Json] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        shape = info.get("shape") if isinstance(info, dict) else None
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(isinstance(o, int) for o in offsets)
            or not 0 <= offsets[0] <= offsets[1] <= data
            or not isinstance(shape, list)
            or not all(isinstance(d, int) and d >= 0 for d in shape)
        ):
            raise invalid(f"model files: {path.name}: tensor {name!r} is malformed")
        tensors[name] = info
    return tensors


def refuse_pickles(files: Iterable[str]) -> None:
    pickled = sorted(f for f in files if f.endswith(PICKLED))
    if pickled:
        raise invalid(
            f"model files: {', '.join(pickled)}: pickled weights are not accepted (loading "
            "them runs code); save them as safetensors"
        )


def projection_shapes(config: Mapping[str, Any]) -> dict[str, tuple[int, int]]:
    """(input, output) size of each of a Llama-style base's projections; empty when the
    config does not say."""
    hidden = config.get("hidden_size")
    heads = config.get("num_attention_heads")
    if not isinstance(hidden, int) or not isinstance(heads, int) or heads <= 0:
        return {}
    head_dim = config.get("head_dim") or hidden // heads
    query, key_value = heads * head_dim, (config.get("num_key_value_heads") or heads) * head_dim
    shapes = {
        "q_proj": (hidden, query),
        "k_proj": (hidden, key_value),
        "v_proj": (hidden, key_value),
        "o_proj": (query, hidden),
    }
    inter = config.get("intermediate_size")
    if isinstance(inter, int):
        shapes |= {"gate_proj": (hidden, inter), "up_proj": (hidden, inter)}
        shapes["down_proj"] = (inter, hidden)
    return shapes


def _expected(name: str, shapes: Mapping[str, tuple[int, int]], rank: int) -> list[int] | None:
    """The shape the base allows for LoRA tensor ``name``; None for a module it does not
    name (only the rank is checked then)."""
    is_a = ".lora_A." in name
    module = name.split(".lora_A." if is_a else ".lora_B.")[0].rsplit(".", 1)[-1]
    if module not in shapes:
        return None
    size_in, size_out = shapes[module]
    return [rank, size_in] if is_a else [size_out, rank]


def check_adapter(
    directory: Path, files: Iterable[str], rank: int, base_config: Mapping[str, Any] | None
) -> list[str]:
    """Check an uploaded LoRA adapter; the warnings (nothing fatal) it leaves."""
    names = set(files)
    refuse_pickles(names)
    config = read_json_file(directory, ADAPTER_CONFIG)
    peft_type = config.get("peft_type", "LORA")
    if peft_type != "LORA":
        raise invalid(
            f"model files: {ADAPTER_CONFIG}: peft_type is {peft_type!r}; Hearth serves LORA"
        )
    if config.get("r") != rank:
        raise invalid(
            f"model files: {ADAPTER_CONFIG}: r is {config.get('r')!r} but "
            f"model.peftDetails.r is {rank}"
        )
    if ADAPTER_WEIGHTS not in names:
        raise missing(f"{ADAPTER_WEIGHTS} was not uploaded (the adapter's weights)")
    tensors = safetensors_header(directory / ADAPTER_WEIGHTS)
    lora = {
        name: info for name, info in tensors.items() if ".lora_A." in name or ".lora_B." in name
    }
    if not lora:
        raise invalid(f"model files: {ADAPTER_WEIGHTS} holds no lora_A/lora_B tensors")
    shapes = projection_shapes(base_config or {})
    for name, info in sorted(lora.items()):
        shape = info["shape"]
        if len(shape) != 2:
            raise invalid(f"model files: {ADAPTER_WEIGHTS}: {name} is not a matrix ({shape})")
        inner = shape[0] if ".lora_A." in name else shape[1]
        if inner != rank:
            raise invalid(
                f"model files: {ADAPTER_WEIGHTS}: {name} has shape {shape}, not rank {rank}"
            )
        expected = _expected(name, shapes, rank)
        if expected is not None and shape != expected:
            raise invalid(
                f"model files: {ADAPTER_WEIGHTS}: {name} has shape {shape}, which does not fit "
                f"the base model (expected {expected})"
            )
    if shapes:
        return []
    return ["the base model's config.json is not readable here; sizes were not checked"]


def check_base_model(
    directory: Path, files: Iterable[str], *, config_only: bool, skip_config: bool
) -> list[str]:
    names = set(files)
    refuse_pickles(names)
    config = read_json_file(directory, "config.json")
    if not skip_config and not isinstance(config.get("model_type"), str):
        raise invalid("model files: config.json has no model_type (is it a Hugging Face config?)")
    if config_only:
        return []
    weights = sorted(n for n in names if n.endswith(".safetensors"))
    if not weights:
        raise missing("no *.safetensors weights were uploaded")
    for name in weights:
        safetensors_header(directory / name)
    if not names & set(TOKENIZER_FILES):
        raise missing(f"no tokenizer was uploaded ({' or '.join(TOKENIZER_FILES)})")
    return []
