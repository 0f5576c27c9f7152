"""Weight-only int8 and int4 quantisation of a model's linear layers (``--precision
int8``, ``--precision int4``).

Each output channel of a weight gets its own scale (``max |w| / 127``, symmetric, rounded
to bfloat16), so a row's error is bounded by half a step of its own range. The matmul
is ``torch._weight_int8pack_mm`` with bfloat16 activations: it dequantises on the fly,
so a decode step reads a quarter of the fp32 weight bytes, which is what bounds CPU
decoding. Measured on the 2-core dev box (AVX512-BF16), one 576x1536 layer: 5x faster
than fp32 at 1 row, 3x at 16; its fp32-activation kernel is 4-50x *slower* than fp32,
and ``quantize_dynamic`` (int8 activations) was slower at 1-16 rows with 3-4x the error.
Outputs are returned in the model's dtype; the rest of the model is untouched.

int4 (``Int4Linear``): groups of 32 input values share a scale and an offset (asymmetric,
16 levels), the layout of llama.cpp's Q4_1, through ``torch._weight_int4pack_mm_for_cpu``
with bfloat16 activations. A decode step reads an eighth of the fp32 weight bytes; all
linears of SmolLM2-135M at one row took 5.1 ms against 12.3 ms for int8 and 23.8 ms for
fp32 here. A layer the kernel cannot take (inputs not a multiple of 32, outputs not a
multiple of 16) is quantised to int8 instead.

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


class _WeightOnlyLinear(nn.Module):
    """What the int8 and int4 layers share: the shape, the float dtype they return in,
    the bias, and the bfloat16 activations their kernels take."""

    adaptable_linear = True  # LoRA may wrap it like an nn.Linear
    kind = ""
    bias: torch.Tensor | None

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.in_features = linear.in_features
        self.out_features = linear.out_features
        self.compute_dtype = linear.weight.dtype
        self.bias = linear.bias

    def matmul(self, flat: torch.Tensor) -> torch.Tensor:
        """``(rows, in)`` bfloat16 activations -> ``(rows, out)``."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, self.in_features)
        y = self.matmul(flat.to(KERNEL_DTYPE)).to(self.compute_dtype)
        if self.bias is not None:
            y = y + self.bias
        return y.view(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, {self.kind}"


class Int8Linear(_WeightOnlyLinear):
    """A linear layer with int8 weights and per-output-channel scales."""

    kind = "int8"
    weight: torch.Tensor  # int8 (out, in)
    scales: torch.Tensor  # bfloat16 (out,)

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__(linear)
        q, scales = quantize_weight(linear.weight)
        # ``weight`` keeps the (out, in) shape callers read (e.g. the vocabulary size).
        self.register_buffer("weight", q.to(linear.weight.device))
        self.register_buffer("scales", scales.to(linear.weight.device))

    def matmul(self, flat: torch.Tensor) -> torch.Tensor:
        return torch._weight_int8pack_mm(flat, self.weight, self.scales)


INT4_GROUP = 32  # input values per scale and offset, as in llama.cpp's Q4_1
INT4_LEVELS = 15  # codes 0..15
INT4_INNER_K_TILES = 2  # the CPU packing's tile width (it accepts 2, 4 or 8)


def quantize_weight_int4(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(out, in)`` float weight -> (packed int4 weight, ``(in/32, out, 2)`` bfloat16
    scales and offsets) for ``torch._weight_int4pack_mm_for_cpu``.

    The kernel computes ``(code - 8) * scale + offset``. Each group spans its own min to
    max in 15 steps; scale and offset are rounded to bfloat16 *before* the codes are
    chosen, so the codes are the nearest ones to what the kernel will reconstruct.
    """
    w = weight.detach().float()
    out_f, in_f = w.shape
    groups = w.view(out_f, in_f // INT4_GROUP, INT4_GROUP)
    low = groups.amin(dim=-1)
    span = groups.amax(dim=-1) - low
    # A constant group keeps scale 1: any scale reconstructs it from the offset.
    scale = torch.where(span > 0, span / INT4_LEVELS, torch.ones_like(span))
    scale = scale.to(KERNEL_DTYPE).float()
    offset = (low + 8 * scale).to(KERNEL_DTYPE).float()
    base = offset - 8 * scale  # the value of code 0, as the kernel will compute it
    codes = torch.round((groups - base[..., None]) / scale[..., None]).clamp_(0, INT4_LEVELS)
    packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(
        codes.to(torch.int32).view(out_f, in_f).contiguous(), INT4_INNER_K_TILES
    )
    scales_and_offsets = torch.stack([scale, offset], dim=-1).transpose(0, 1).contiguous()
    return packed, scales_and_offsets.to(KERNEL_DTYPE)


class Int4Linear(_WeightOnlyLinear):
    """A linear layer with int4 weights, a scale and an offset per 32 inputs."""

    kind = "int4"
    packed: torch.Tensor  # the kernel's packed layout of the (out, in) int4 codes
    scales_and_offsets: torch.Tensor  # bfloat16 (in / 32, out, 2)

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__(linear)
        packed, scales = quantize_weight_int4(linear.weight)
        device = linear.weight.device
        self.register_buffer("packed", packed.to(device))
        self.register_buffer("scales_and_offsets", scales.to(device))

    @property
    def weight(self) -> torch.Tensor:
        """A stand-in with the ``(out, in)`` shape callers read (e.g. the vocabulary
        size); the int4 codes themselves are packed for the kernel."""
        return torch.empty(
            self.out_features, self.in_features, dtype=self.compute_dtype, device="meta"
        )

    def matmul(self, flat: torch.Tensor) -> torch.Tensor:
        return torch._weight_int4pack_mm_for_cpu(
            flat, self.packed, INT4_GROUP, self.scales_and_offsets
        )


def int4_fits(linear: nn.Linear) -> bool:
    """The kernel takes inputs in whole groups and outputs in multiples of 16."""
    return linear.in_features % INT4_GROUP == 0 and linear.out_features % 16 == 0


def quantize_linears(model: nn.Module, bits: int = 8) -> int:
    """Replace every ``nn.Linear`` of ``model`` (the output head included) by an
    :class:`Int8Linear` (``bits=8``) or :class:`Int4Linear` (``bits=4``; int8 for the
    output head and where the kernel cannot take the shape), in place; return how many
    were replaced."""
    if bits not in (4, 8):
        raise ValueError(f"bits must be 4 or 8, got {bits}")
    # The output head stays int8, as llama.cpp's 4-bit files keep it at higher precision:
    # measured on SmolLM2, int4 gave its logits 8.5% error against 1.1% in int8.
    find_head = getattr(model, "get_output_embeddings", None)
    head = find_head() if callable(find_head) else None
    replaced = 0
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if type(child) is nn.Linear:
                four = bits == 4 and int4_fits(child) and child is not head
                setattr(module, name, Int4Linear(child) if four else Int8Linear(child))
                replaced += 1
    return replaced
