"""Multi-LoRA: PEFT adapter loading, batched mixed-adapter linears and the slot table.

Every patched linear keeps its base layer plus ``--max-loras`` adapter slots, with the
scaling folded into B and ranks zero-padded to ``--max-lora-rank``. One forward pass
serves rows of many adapters at once (the runner packs rows of one adapter together
and publishes the runs as segments):

* Linears that read the same input (q/k/v of a layer; gate/up) share one
  :class:`ShrinkGroup`: their A matrices are stacked so that one matmul computes the
  down-projection (the "shrink") for all of them.
* Short runs (decode rows: a few rows per adapter) are done densely, BGMV-style: the
  shrink is computed against every slot in the runs' slot range, each row keeps only
  its own slot's block (a one-hot select), and one matmul against the stacked B of
  that slot range adds every row's delta. There is no per-row work and no gather or
  scatter; the price is a few wasted FLOPs on tiny matrices, while the bytes read (the
  real cost on a CPU) are each active adapter's weights once.
* Long runs (prefill chunks, or many decode rows of one adapter) are done per run
  (SGMV-style): ``x[s:e] @ A[slot]`` then ``@ B[slot]``.

Base-model rows have no run and cost nothing.
"""

from __future__ import annotations

import itertools
import json
import math
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, cast

import torch
from torch import nn

from hearth_server.engine.layer_calls import direct

TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
# Sibling linears that read the same input tensor: one shrink matmul serves them all.
SHARED_INPUT_GROUPS = (("q_proj", "k_proj", "v_proj"), ("gate_proj", "up_proj"))
# Runs of at most this many rows are batched densely; longer ones are done one by one.
DENSE_RUN_ROWS = 8


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


@dataclass(frozen=True)
class DenseRuns:
    """Consecutive short runs done together: rows ``start:end`` (base rows between the
    runs included) against adapter slots ``lo:hi``. ``off[i, k]`` is True unless row
    ``start + i`` belongs to slot ``lo + k`` (so it is True throughout for base rows)."""

    start: int
    end: int
    lo: int
    hi: int
    off: torch.Tensor  # (end - start, hi - lo, 1, 1) bool


def plan_runs(
    segments: list[Segment],
    device: torch.device,
    batch_limit: int = DENSE_RUN_ROWS,
    unsafe: frozenset[int] | set[int] = frozenset(),
) -> tuple[list[Segment], DenseRuns | None]:
    """Split runs into those done one by one and one dense block.

    Slots in ``unsafe`` hold non-finite B values (slipped past load_adapter's checks):
    in a dense block every row meets every slot's B (times zero, and 0 * NaN is NaN),
    so their runs are always done one by one, where they touch only their own rows.

    The dense block is the longest streak of at least two consecutive short runs with
    at most ``batch_limit`` base rows between neighbours, whose slot range has at most
    one idle slot per four used ones (an idle slot's weights would be read for nothing).
    """
    best: list[Segment] = []
    streak: list[Segment] = []
    for seg in segments:
        short = seg.end - seg.start <= batch_limit and seg.slot not in unsafe
        near = bool(streak) and seg.start - streak[-1].end <= batch_limit
        streak = [*streak, seg] if short and near else [seg] if short else []
        if len(streak) > len(best):
            best = streak
    slots = {s.slot for s in best}
    if len(best) < 2 or max(slots) + 1 - min(slots) - len(slots) > len(slots) // 4:
        return segments, None
    lo, hi = min(slots), max(slots) + 1
    start, end = best[0].start, best[-1].end
    on = torch.zeros(end - start, hi - lo, 1, 1, dtype=torch.bool)
    for s in best:
        on[s.start - start : s.end - start, s.slot - lo] = True
    rest = [s for s in segments if all(s is not b for b in best)]
    return rest, DenseRuns(start, end, lo, hi, (~on).to(device))


class LoRAContext:
    """Adapter layout of the forward pass in progress (set by the runner each step)."""

    def __init__(self) -> None:
        self.segments: list[Segment] = []  # runs done one by one
        self.dense: DenseRuns | None = None
        self.version = 0  # bumped on every change, so no stale shrink is ever reused
        self.unsafe_slots: set[int] = set()  # slots whose B has NaN/inf (see plan_runs)

    @property
    def idle(self) -> bool:
        return not self.segments and self.dense is None

    def set(
        self,
        segments: list[Segment],
        n_slots: int,
        dtype: torch.dtype,
        device: torch.device,
        batch_limit: int = DENSE_RUN_ROWS,
    ) -> None:
        self.version += 1
        self.segments, self.dense = plan_runs(segments, device, batch_limit, self.unsafe_slots)

    def clear(self) -> None:
        self.version += 1
        self.segments, self.dense = [], None


@dataclass
class Shrunk:
    """``x @ A`` of every member of a group: per one-by-one run ``(rows, members*r)``;
    for the dense block ``(rows, slots, members, r)`` with other slots' blocks zeroed."""

    segments: list[torch.Tensor]
    dense: torch.Tensor | None


class ShrinkGroup:
    """The stacked A matrices ``(in, slots, members, r)`` of linears that read one input.

    The first member called in a forward pass computes the shrink for all members; the
    others find it by the identity of their input tensor (and the context's version).
    """

    def __init__(
        self,
        in_features: int,
        members: int,
        n_slots: int,
        max_rank: int,
        dtype: torch.dtype,
        device: torch.device,
    ) -> None:
        self.a = torch.zeros(in_features, n_slots, members, max_rank, dtype=dtype, device=device)
        self.members = members
        self._input: torch.Tensor | None = None
        self._version = -1
        self._uses = 0
        self._result: Shrunk | None = None

    def shrink(self, flat_x: torch.Tensor, key: torch.Tensor, ctx: LoRAContext) -> Shrunk:
        result = self._result
        if result is None or key is not self._input or ctx.version != self._version:
            result = self._compute(flat_x, ctx)
            self._input, self._version, self._result, self._uses = key, ctx.version, result, 0
        self._uses += 1
        if self._uses >= self.members:  # every member has it: hold no tensors between steps
            self._input, self._result = None, None
        return result

    def _compute(self, x: torch.Tensor, ctx: LoRAContext) -> Shrunk:
        n_in, n_slots, members, rank = self.a.shape
        width = members * rank
        segments = [
            x[s.start : s.end] @ self.a[:, s.slot].reshape(n_in, width) for s in ctx.segments
        ]
        dense = None
        if ctx.dense is not None:
            d = ctx.dense
            a = self.a.view(n_in, n_slots * width)[:, d.lo * width : d.hi * width]
            dense = (x[d.start : d.end] @ a).view(d.end - d.start, d.hi - d.lo, members, rank)
            # Select, not multiply: 0 * inf is NaN, and would spread one slot's overflow
            # into the delta of a row that does not use that slot.
            dense.masked_fill_(d.off, 0.0)
        return Shrunk(segments, dense)


class _LinearShape(Protocol):
    in_features: int
    out_features: int


def adaptable(module: nn.Module) -> bool:
    """nn.Linear, or a stand-in that computes the same (a quantised linear) and says so."""
    return isinstance(module, nn.Linear) or bool(getattr(module, "adaptable_linear", False))


def compute_dtype(module: nn.Module) -> torch.dtype:
    """The float dtype a linear computes in (a quantised one stores int8 weights)."""
    dtype = getattr(module, "compute_dtype", None)
    if isinstance(dtype, torch.dtype):
        return dtype
    weight = module.weight
    assert isinstance(weight, torch.Tensor)
    return weight.dtype


class LoRALinear(nn.Module):
    def __init__(
        self,
        base: nn.Module,
        group: ShrinkGroup,
        member: int,
        n_slots: int,
        max_rank: int,
        ctx: LoRAContext,
    ) -> None:
        super().__init__()
        self.base = base
        self._base_forward = direct(base)  # see layer_calls: no __call__ on the hot path
        self.group = group
        self.member = member
        self.ctx = ctx
        shape = cast(_LinearShape, base)
        self.in_features, self.out_features = shape.in_features, shape.out_features
        self.rank = max_rank
        self.lora_b = torch.zeros(
            n_slots, max_rank, self.out_features, dtype=group.a.dtype, device=group.a.device
        )

    @property
    def lora_a(self) -> torch.Tensor:
        """This linear's A of every slot, ``(slots, in, r)`` (a view into the group)."""
        return self.group.a[:, :, self.member].permute(1, 0, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self._base_forward(x)
        ctx = self.ctx
        if ctx.idle:
            return y
        flat_x = x.reshape(-1, x.shape[-1])
        flat_y = y.view(-1, y.shape[-1])
        shrunk = self.group.shrink(flat_x, x, ctx)
        r = self.rank
        cols = slice(self.member * r, (self.member + 1) * r)
        for seg, s in zip(ctx.segments, shrunk.segments, strict=True):
            flat_y[seg.start : seg.end].addmm_(s[:, cols], self.lora_b[seg.slot])
        d = ctx.dense
        if d is not None and shrunk.dense is not None:
            rows, slots = d.end - d.start, d.hi - d.lo
            mine = shrunk.dense[:, :, self.member].reshape(rows, slots * r)
            b = self.lora_b[d.lo : d.hi].view(slots * r, self.out_features)
            flat_y[d.start : d.end].addmm_(mine, b)
        return y

    @torch.inference_mode()
    def set_slot(self, slot: int, a: torch.Tensor | None, b: torch.Tensor | None) -> bool:
        """Write an adapter's A and B (None: no delta) into ``slot``; return whether B
        is all finite."""
        a_slot = self.group.a[:, slot, self.member]
        a_slot.zero_()
        self.lora_b[slot].zero_()
        if a is None or b is None:
            return True
        r = a.shape[1]
        a_slot[:, :r].copy_(a)
        self.lora_b[slot, :r, :].copy_(b)
        return bool(torch.isfinite(b).all())


def _input_groups(names: list[str]) -> list[list[str]]:
    """``names`` (present target linears of one module) split into shared-input groups."""
    groups = [[n for n in shared if n in names] for shared in SHARED_INPUT_GROUPS]
    grouped = {n for g in groups for n in g}
    return [g for g in groups if g] + [[n] for n in names if n not in grouped]


def patch_model(
    model: nn.Module, n_slots: int, max_rank: int
) -> tuple[LoRAContext, dict[str, LoRALinear]]:
    """Replace the target linears of every decoder layer by LoRALinear wrappers."""
    ctx = LoRAContext()
    patched: dict[str, LoRALinear] = {}
    for name, module in list(model.named_modules()):
        children = {
            n: c for n, c in module.named_children() if n in TARGET_MODULES and adaptable(c)
        }
        for members in _input_groups(list(children)):
            first = cast(_LinearShape, children[members[0]])
            if any(
                cast(_LinearShape, children[n]).in_features != first.in_features for n in members
            ):
                groups = [[n] for n in members]  # not one input after all: no sharing
            else:
                groups = [members]
            for group_names in groups:
                base = children[group_names[0]]
                group = ShrinkGroup(
                    cast(_LinearShape, base).in_features,
                    len(group_names),
                    n_slots,
                    max_rank,
                    compute_dtype(base),
                    _device(base),
                )
                for i, child_name in enumerate(group_names):
                    wrapper = LoRALinear(children[child_name], group, i, n_slots, max_rank, ctx)
                    setattr(module, child_name, wrapper)
                    patched[f"{name}.{child_name}" if name else child_name] = wrapper
    return ctx, patched


def _device(module: nn.Module) -> torch.device:
    tensor = next(itertools.chain(module.parameters(), module.buffers()))
    return tensor.device


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
        base = target
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
        # The context every wrapper shares (patch_model makes one per model).
        self.ctx = next((m.ctx for m in modules.values()), None)
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
            finite = [
                layer.set_slot(slot, *(weights.tensors.get(module) or (None, None)))
                for module, layer in self.modules.items()
            ]
            if self.ctx is not None:
                if all(finite):
                    self.ctx.unsafe_slots.discard(slot)
                else:
                    self.ctx.unsafe_slots.add(slot)
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
            # Lowest first: active adapters stay in a narrow slot range (see plan_runs).
            slot = min(self.free)
            self.free.remove(slot)
            return slot
        for key, slot in self.slot_of.items():  # least recently used first
            if self.pins[slot] == 0:
                del self.slot_of[key]
                return slot
        return None

    @property
    def active(self) -> list[str]:
        return [name for name, _ in self.slot_of]
