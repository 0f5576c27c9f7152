"""Weight-only int8 quantisation of a model's linear layers (``--precision int8``).

Each output channel of a weight gets its own scale (``max |w| / 127``, symmetric, rounded
to bfloat16), so a row's error is bounded by half a step of its own range. The matmul
is ``torch._weight_int8pack_mm`` with bfloat16 activations: it dequantises on the fly,
so a decode step reads a quarter of the fp32 weight bytes, which is what bounds CPU
decoding. Measured on the 2-core dev box (AVX512-BF16), one 576x1536 layer: 5x faster
than fp32 at 1 row, 3x at 16; its fp32-activation kernel is 4-50x *slower* than fp32,
and ``quantize_dynamic`` (int8 activations) was slower at 1-16 rows with 3-4x the error.
Outputs are returned in the model's dtype; the rest of the model is untouched.

The quantised layer keeps ``in_features``/``out_features`` and says
``adaptable_linear``, so LoRA wrappers (engine/lora.py) still go on top of it; the
adapters' own A and B stay in float.
"""

from __future__ import annotations

import torch
from torch import nn

INT8_MAX = 127
# The kernel's fast path takes bfloat16 activations and scales.
KERNEL_DTYPE = torch.bfloat16


def quantize_weight(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(out, in)`` float weight -> (int8 weight, per-output-channel bfloat16 scales).

    Quantising with the scale as rounded to bfloat16 keeps the kernel exact about it;
    a row's largest value may then land on 127.5 and is clamped, half a step at most.
    """
    w = weight.detach().float()
    # An all-zero row keeps scale 1 (any scale gives zeros): never divide by zero.
    amax = w.abs().amax(dim=1)
    scales = torch.where(amax > 0, amax / INT8_MAX, torch.ones_like(amax)).to(KERNEL_DTYPE)
    q = torch.round(w / scales.float()[:, None]).clamp_(-INT8_MAX, INT8_MAX).to(torch.int8)
    return q.contiguous(), scales


class Int8Linear(nn.Module):
    """A linear layer with int8 weights and per-output-channel scales."""

    adaptable_linear = True  # LoRA may wrap it like an nn.Linear
    weight: torch.Tensor  # int8 (out, in)
    scales: torch.Tensor  # bfloat16 (out,)
    bias: torch.Tensor | None

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.in_features = linear.in_features
        self.out_features = linear.out_features
        self.compute_dtype = linear.weight.dtype
        q, scales = quantize_weight(linear.weight)
        # ``weight`` keeps the (out, in) shape callers read (e.g. the vocabulary size).
        self.register_buffer("weight", q.to(linear.weight.device))
        self.register_buffer("scales", scales.to(linear.weight.device))
        self.bias = linear.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, self.in_features)
        y = torch._weight_int8pack_mm(flat.to(KERNEL_DTYPE), self.weight, self.scales)
        y = y.to(self.compute_dtype)
        if self.bias is not None:
            y = y + self.bias
        return y.view(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8"


def quantize_linears(model: nn.Module) -> int:
    """Replace every ``nn.Linear`` of ``model`` (the output head included) by an
    :class:`Int8Linear`, in place; return how many were replaced."""
    replaced = 0
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if type(child) is nn.Linear:
                setattr(module, name, Int8Linear(child))
                replaced += 1
    return replaced
