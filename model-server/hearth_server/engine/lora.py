"""Multi-LoRA: PEFT adapter loading, per-row LoRA linears and the active-slot table.

Every patched ``nn.Linear`` keeps its base weight and a stack of adapter slots
``A[slot]: (in, r_max)`` and ``B[slot]: (r_max, out)`` (scaling folded into B). One
forward pass serves rows of many adapters: the engine packs rows so that rows with the
same adapter are contiguous and publishes the runs as segments; each module then adds
``x[s:e] @ A[slot] @ B[slot]`` per segment (SGMV-style; base rows have no segment).
"""

from __future__ import annotations

import itertools
import json
import math
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


class AdapterError(ValueError):
    """The adapter directory is unusable; the message says why (rendered as a 400)."""


@dataclass
class LoRAWeights:
    """An adapter held in CPU memory: module path -> (A (in, r), B (r, out) * scaling)."""

    name: str
    path: Path
    rank: int
    tensors: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    # Unique per read from disk, so a re-loaded adapter never reuses a stale slot.
    generation: int = field(default_factory=itertools.count().__next__)

    @property
    def key(self) -> tuple[str, int]:
        return self.name, self.generation

    @property
    def nbytes(self) -> int:
        return sum(
            a.numel() * a.element_size() + b.numel() * b.element_size()
            for a, b in self.tensors.values()
        )


@dataclass
class Segment:
    start: int
    end: int
    slot: int


class LoRAContext:
    """Adapter layout of the forward pass in progress (set by the runner each step).

    ``segments`` are handled one by one (long prefill runs). Short decode runs of
    several adapters are handled together by two ``bmm`` calls over a padded
    ``(n_runs, width)`` row table: ``rows`` (flattened, padding points at row 0),
    ``pad_mask`` (False on padding) and ``slots`` (the adapter slot of each run).
    """

    def __init__(self) -> None:
        self.segments: list[Segment] = []
        self.rows: torch.Tensor | None = None
        self.pad_mask: torch.Tensor | None = None
        self.slots: torch.Tensor | None = None
        self.all_slots = False  # runs are exactly slots 0..n-1: no weight gather needed

    def set(
        self,
        segments: list[Segment],
        n_slots: int,
        dtype: torch.dtype,
        device: torch.device,
        batch_limit: int = 8,
    ) -> None:
        """Split runs: those of at most ``batch_limit`` rows go to the bmm table when
        there are at least two of them; the rest stay per-segment."""
        short = [s for s in segments if s.end - s.start <= batch_limit]
        if len(short) < 2:
            self.segments, self.rows, self.pad_mask, self.slots = segments, None, None, None
            return
        self.segments = [s for s in segments if s.end - s.start > batch_limit]
        width = max(s.end - s.start for s in short)
        rows = torch.zeros(len(short), width, dtype=torch.long)
        mask = torch.zeros(len(short), width, 1, dtype=torch.bool)
        for i, s in enumerate(short):
            n = s.end - s.start
            rows[i, :n] = torch.arange(s.start, s.end)
            mask[i, :n] = True
        slots = [s.slot for s in short]
        self.rows = rows.view(-1).to(device)
        self.pad_mask = mask.to(device=device)
        self.slots = torch.tensor(slots, dtype=torch.long, device=device)
        self.all_slots = slots == list(range(n_slots))

    def clear(self) -> None:
        self.segments, self.rows, self.pad_mask, self.slots = [], None, None, None


class LoRALinear(nn.Module):
    def __init__(self, base: nn.Linear, n_slots: int, max_rank: int, ctx: LoRAContext) -> None:
        super().__init__()
        self.base = base
        self.ctx = ctx
        dtype, device = base.weight.dtype, base.weight.device
        self.lora_a = torch.zeros(n_slots, base.in_features, max_rank, dtype=dtype, device=device)
        self.lora_b = torch.zeros(n_slots, max_rank, base.out_features, dtype=dtype, device=device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y: torch.Tensor = self.base(x)
        ctx = self.ctx
        if not ctx.segments and ctx.rows is None:
            return y
        flat_x = x.reshape(-1, x.shape[-1])
        flat_y = y.view(-1, y.shape[-1])
        for seg in ctx.segments:
            shrunk = flat_x[seg.start : seg.end] @ self.lora_a[seg.slot]
            flat_y[seg.start : seg.end].addmm_(shrunk, self.lora_b[seg.slot])
        if ctx.rows is not None and ctx.slots is not None and ctx.pad_mask is not None:
            n_runs = ctx.slots.shape[0]
            a, b = self.lora_a, self.lora_b
            if not ctx.all_slots:
                a, b = a.index_select(0, ctx.slots), b.index_select(0, ctx.slots)
            xs = flat_x.index_select(0, ctx.rows).view(n_runs, -1, flat_x.shape[-1])
            # Padding rows add exactly nothing to row 0: select, not multiply, since
            # 0 * inf is NaN and would leak one row's overflow into another request.
            shrunk = torch.bmm(xs, a).masked_fill_(~ctx.pad_mask, 0.0)
            delta = torch.bmm(shrunk, b).masked_fill_(~ctx.pad_mask, 0.0)
            flat_y.index_add_(0, ctx.rows, delta.view(-1, flat_y.shape[-1]))
        return y

    @torch.inference_mode()
    def set_slot(self, slot: int, a: torch.Tensor | None, b: torch.Tensor | None) -> None:
        self.lora_a[slot].zero_()
        self.lora_b[slot].zero_()
        if a is not None and b is not None:
            r = a.shape[1]
            self.lora_a[slot, :, :r].copy_(a)
            self.lora_b[slot, :r, :].copy_(b)


def patch_model(
    model: nn.Module, n_slots: int, max_rank: int
) -> tuple[LoRAContext, dict[str, LoRALinear]]:
    """Replace the target linears of every decoder layer by LoRALinear wrappers."""
    ctx = LoRAContext()
    patched: dict[str, LoRALinear] = {}
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if child_name in TARGET_MODULES and isinstance(child, nn.Linear):
                wrapper = LoRALinear(child, n_slots, max_rank, ctx)
                setattr(module, child_name, wrapper)
                patched[f"{name}.{child_name}" if name else child_name] = wrapper
    return ctx, patched


def _module_key(peft_key: str) -> tuple[str, str] | None:
    """'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight'
    -> ('model.layers.0.self_attn.q_proj', 'A')."""
    for part, which in ((".lora_A.", "A"), (".lora_B.", "B")):
        if part in peft_key:
            module = peft_key.split(part)[0]
            module = module.removeprefix("base_model.model.")
            return module, which
    return None


def load_adapter(
    name: str, path: Path, modules: dict[str, LoRALinear], max_rank: int, dtype: torch.dtype
) -> LoRAWeights:
    """Read and validate a PEFT LoRA directory; raise AdapterError on any problem."""
    cfg_path = path / "adapter_config.json"
    try:
        cfg = json.loads(cfg_path.read_text())
    except FileNotFoundError as exc:
        raise AdapterError(f"adapter_config.json missing in {path}") from exc
    except (OSError, ValueError) as exc:
        raise AdapterError(f"adapter_config.json in {path} is not valid JSON: {exc}") from exc
    if not isinstance(cfg, dict):
        raise AdapterError("adapter_config.json must hold a JSON object")
    if cfg.get("peft_type", "LORA") != "LORA":
        raise AdapterError(f"only LoRA adapters are supported, got peft_type={cfg['peft_type']!r}")
    for unsupported in ("use_dora", "modules_to_save", "rank_pattern", "alpha_pattern"):
        if cfg.get(unsupported):
            raise AdapterError(f"adapter_config.json: {unsupported} is not supported")
    rank = cfg.get("r")
    if not isinstance(rank, int) or isinstance(rank, bool) or rank < 1:
        raise AdapterError("adapter_config.json: r must be a positive integer")
    if rank > max_rank:
        raise AdapterError(f"adapter rank {rank} exceeds --max-lora-rank {max_rank}")
    alpha = cfg.get("lora_alpha", rank)
    if not isinstance(alpha, int | float) or isinstance(alpha, bool) or not math.isfinite(alpha):
        raise AdapterError("adapter_config.json: lora_alpha must be a finite number")
    scaling = alpha / math.sqrt(rank) if cfg.get("use_rslora") else alpha / rank

    weights_file = path / "adapter_model.safetensors"
    if not weights_file.is_file():
        raise AdapterError(f"adapter_model.safetensors missing in {path}")
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        raw = load_file(str(weights_file))
    except (SafetensorError, OSError, ValueError) as exc:
        raise AdapterError(f"cannot read {weights_file.name}: {exc}") from exc

    pairs: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in raw.items():
        parsed = _module_key(key)
        if parsed is None:
            raise AdapterError(f"unexpected tensor {key!r} (only lora_A/lora_B are supported)")
        module, which = parsed
        pairs.setdefault(module, {})[which] = tensor
    if not pairs:
        raise AdapterError("adapter has no LoRA tensors")

    out = LoRAWeights(name=name, path=path, rank=rank)
    for module, ab in pairs.items():
        target = modules.get(module)
        if target is None:
            raise AdapterError(f"adapter targets {module!r}, which this model cannot adapt")
        if set(ab) != {"A", "B"}:
            raise AdapterError(f"{module}: needs both lora_A and lora_B")
        a, b = ab["A"], ab["B"]  # PEFT: A (r, in), B (out, r)
        base = target.base
        if a.dim() != 2 or b.dim() != 2 or a.shape != (rank, base.in_features):
            raise AdapterError(
                f"{module}: lora_A has shape {tuple(a.shape)}, expected ({rank}, "
                f"{base.in_features}) (rank r={rank} from adapter_config.json)"
            )
        if b.shape != (base.out_features, rank):
            raise AdapterError(
                f"{module}: lora_B has shape {tuple(b.shape)}, expected "
                f"({base.out_features}, {rank}) (rank r={rank} from adapter_config.json)"
            )
        if not (a.is_floating_point() and b.is_floating_point()):
            raise AdapterError(f"{module}: LoRA tensors must be floating point")
        a_t = a.t().contiguous().to(dtype)
        b_t = (b.float().t() * scaling).contiguous().to(dtype)
        # A NaN or an overflow (to the serving dtype, after scaling) would poison every
        # request through this adapter; refuse it here rather than fail at sampling.
        for which, tensor in (("lora_A", a_t), ("lora_B", b_t)):
            if not torch.isfinite(tensor).all():
                raise AdapterError(
                    f"{module}: {which} has non-finite values (NaN or infinity) "
                    f"after scaling by {scaling:g} in {dtype}"
                )
        out.tensors[module] = (a_t, b_t)
    return out


class SlotTable:
    """Maps adapters to the ``max_loras`` active slots; LRU among unpinned slots.

    Only the engine thread calls this (it writes the slot tensors between steps).
    """

    def __init__(self, n_slots: int, modules: dict[str, LoRALinear]) -> None:
        self.modules = modules
        self.n_slots = n_slots
        # (name, generation) -> slot, in LRU order (oldest first)
        self.slot_of: OrderedDict[tuple[str, int], int] = OrderedDict()
        self.pins = [0] * n_slots
        self.free = list(range(n_slots))

    def acquire(self, weights: LoRAWeights) -> int | None:
        """Pin a slot holding ``weights``; None when every slot is pinned."""
        slot = self.slot_of.get(weights.key)
        if slot is None:
            slot = self._take_slot()
            if slot is None:
                return None
            for module, layer in self.modules.items():
                ab = weights.tensors.get(module)
                layer.set_slot(slot, *(ab if ab else (None, None)))
            self.slot_of[weights.key] = slot
        self.slot_of.move_to_end(weights.key)
        self.pins[slot] += 1
        return slot

    def release(self, slot: int) -> None:
        self.pins[slot] -= 1

    def drop(self, name: str) -> None:
        """Forget ``name``'s slot contents that are unpinned (after unload)."""
        for key, slot in list(self.slot_of.items()):
            if key[0] == name and self.pins[slot] == 0:
                del self.slot_of[key]
                self.free.append(slot)

    def _take_slot(self) -> int | None:
        if self.free:
            return self.free.pop()
        for key, slot in self.slot_of.items():  # least recently used first
            if self.pins[slot] == 0:
                del self.slot_of[key]
                return slot
        return None

    @property
    def active(self) -> list[str]:
        return [name for name, _ in self.slot_of]
