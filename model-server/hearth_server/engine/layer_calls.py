"""The decoder layer's modules as plain calls, looked up once.

A one-row decode step of a 30-layer model makes about 550 module calls; each
``nn.Module.__call__`` (hook checks) and each submodule lookup through
``nn.Module.__getattr__`` costs a few microseconds, which measured about a tenth of the
step on this project's CPUs. The runner calls these bound ``forward`` methods and
functions instead. They compute exactly what the Hugging Face modules compute (same
operators in the same order), and fall back to the module itself for any layout they
do not recognise or any module with forward hooks (hooks registered after the engine
starts are not called).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import nn
from torch.nn import functional as F

Call = Callable[[torch.Tensor], torch.Tensor]

# Hugging Face's RMSNorm classes of the supported architectures (same forward each).
_RMS_NORMS = ("LlamaRMSNorm", "MistralRMSNorm", "Qwen2RMSNorm")


@dataclass(frozen=True)
class LayerCalls:
    input_norm: Call
    q: Call
    k: Call
    v: Call
    o: Call
    post_norm: Call
    mlp: Call


def layer_calls(layer: Any) -> LayerCalls:
    attn = layer.self_attn
    return LayerCalls(
        input_norm=rms_norm_call(layer.input_layernorm),
        q=direct(attn.q_proj),
        k=direct(attn.k_proj),
        v=direct(attn.v_proj),
        o=direct(attn.o_proj),
        post_norm=rms_norm_call(layer.post_attention_layernorm),
        mlp=mlp_call(layer.mlp),
    )


def direct(module: nn.Module) -> Call:
    """``module.forward``, skipping ``__call__``: only when no hook is registered."""
    if _has_hooks(module):
        return module
    forward: Call = module.forward
    return forward


def rms_norm_call(norm: nn.Module) -> Call:
    if type(norm).__name__ not in _RMS_NORMS or _has_hooks(norm):
        return norm
    weight = cast(torch.Tensor, norm.weight)
    eps = float(cast(float, norm.variance_epsilon))

    def call(hidden: torch.Tensor) -> torch.Tensor:
        # Hugging Face's LlamaRMSNorm.forward, operator for operator.
        dtype = hidden.dtype
        h = hidden.to(torch.float32)
        variance = h.pow(2).mean(-1, keepdim=True)
        h = h * torch.rsqrt(variance + eps)
        return weight * h.to(dtype)

    return call


def mlp_call(mlp: nn.Module) -> Call:
    act = getattr(mlp, "act_fn", None)
    parts = [getattr(mlp, n, None) for n in ("gate_proj", "up_proj", "down_proj")]
    silu = isinstance(act, nn.SiLU) or type(act).__name__ == "SiLUActivation"
    if not silu or any(p is None for p in parts) or _has_hooks(mlp):
        return mlp
    gate, up, down = (direct(p) for p in parts if p is not None)

    def call(x: torch.Tensor) -> torch.Tensor:
        # Hugging Face's LlamaMLP.forward with act_fn = SiLU.
        return down(F.silu(gate(x)) * up(x))

    return call


def _has_hooks(module: nn.Module) -> bool:
    return bool(
        module._forward_hooks
        or module._forward_pre_hooks
        or nn.modules.module._global_forward_hooks
        or nn.modules.module._global_forward_pre_hooks
    )
