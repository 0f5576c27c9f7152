"""The batched forward pass over a packed batch of decode rows and prefill chunks.

We drive the Hugging Face llama-family modules ourselves instead of calling
``model.forward`` so that the KV cache is ours: one tensor per layer of shape
``(slots, kv_heads, capacity, head_dim)``. Active sequences always occupy slots
``0..n_active-1`` (a finished sequence's hole is filled by moving the last one), so
decode attention runs on a view of the cache without gathering.

Every method that allocates or writes the cache runs under ``torch.inference_mode()``,
whichever thread calls it: the cache tensors are always inference tensors, and an
in-place update of one outside inference mode is an error in torch.

Positions that no active sequence owns are kept at zero (``clear_slot``). Masked
attention multiplies them by a zero weight, and a NaN left behind by a diverging
sequence would turn that product into NaN for the next sequence in the slot.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from hearth_server.engine.layer_calls import direct, layer_calls
from hearth_server.engine.lora import LoRAContext, Segment

SUPPORTED_ARCHITECTURES = ("llama", "mistral", "qwen2")


@dataclass
class Chunk:
    """Tokens of one sequence fed in this step, starting at cache position ``start``."""

    slot: int
    tokens: list[int]
    start: int
    lora_slot: int  # -1: base model
    want_logits: bool = True
    # Prompt logprobs: ask for the logits of every position of this chunk; the step
    # leaves them (m, V) float32 on the CPU in ``position_logits``.
    prompt_logits: bool = False
    position_logits: torch.Tensor | None = None


class ModelRunner:
    def __init__(
        self,
        model: nn.Module,
        lora_ctx: LoRAContext,
        max_seqs: int,
        max_len: int,
        n_lora_slots: int = 0,
    ) -> None:
        hf: Any = model  # transformers modules are untyped; we use their llama layout
        cfg = hf.config
        if cfg.model_type not in SUPPORTED_ARCHITECTURES:
            raise ValueError(
                f"architecture {cfg.model_type!r} is not supported "
                f"(supported: {', '.join(SUPPORTED_ARCHITECTURES)})"
            )
        self.model = model
        self.lora_ctx = lora_ctx
        self.n_lora_slots = n_lora_slots
        inner = hf.model
        self.embed = inner.embed_tokens
        self.layers = list(inner.layers)
        self.calls = [layer_calls(layer) for layer in self.layers]  # the hot path's calls
        self.norm = inner.norm
        self.rotary = inner.rotary_emb
        self.lm_head = hf.lm_head
        self._head = direct(hf.lm_head)
        self.n_heads = int(cfg.num_attention_heads)
        self.n_kv = int(getattr(cfg, "num_key_value_heads", None) or self.n_heads)
        self.head_dim = int(getattr(cfg, "head_dim", None) or cfg.hidden_size // self.n_heads)
        self.group = self.n_heads // self.n_kv
        self.max_seqs = max_seqs
        self.max_len = max_len
        self.vocab_size = int(self.lm_head.weight.shape[0])
        self.dtype: torch.dtype = self.embed.weight.dtype
        self.device: torch.device = self.embed.weight.device
        self.capacity = 0
        self.k_cache: list[torch.Tensor] = []
        self.v_cache: list[torch.Tensor] = []
        self._ensure_capacity(min(256, max_len))

    # -- cache management -------------------------------------------------------------
    @torch.inference_mode()
    def _ensure_capacity(self, needed: int) -> None:
        if needed <= self.capacity:
            return
        new_cap = self.capacity or 256
        while new_cap < needed:
            new_cap *= 2
        new_cap = min(max(new_cap, needed), self.max_len)
        shape = (self.max_seqs, self.n_kv, new_cap, self.head_dim)
        for i in range(len(self.layers)):
            k = torch.zeros(shape, dtype=self.dtype, device=self.device)
            v = torch.zeros(shape, dtype=self.dtype, device=self.device)
            if self.capacity:
                k[:, :, : self.capacity].copy_(self.k_cache[i])
                v[:, :, : self.capacity].copy_(self.v_cache[i])
            if i < len(self.k_cache):
                self.k_cache[i], self.v_cache[i] = k, v
            else:
                self.k_cache.append(k)
                self.v_cache.append(v)
        self.capacity = new_cap

    @torch.inference_mode()
    def move_slot(self, src: int, dst: int, length: int) -> None:
        """Copy a sequence's cache to another slot (used to keep slots compact)."""
        for k, v in zip(self.k_cache, self.v_cache, strict=True):
            k[dst, :, :length].copy_(k[src, :, :length])
            v[dst, :, :length].copy_(v[src, :, :length])

    @torch.inference_mode()
    def clear_slot(self, slot: int, length: int) -> None:
        """Zero the first ``length`` positions of ``slot`` (all a sequence wrote there)."""
        for k, v in zip(self.k_cache, self.v_cache, strict=True):
            k[slot, :, :length].zero_()
            v[slot, :, :length].zero_()

    @torch.inference_mode()
    def read_blocks(self, slot: int, start: int, end: int, block: int) -> list[torch.Tensor]:
        """Copies of positions ``[start, end)`` of ``slot``, cut into blocks of ``block``
        positions, each ``(layers, 2, kv_heads, block, head_dim)`` and owning its memory
        (so evicting one frees it). Empty if any value is not finite: a block is reused
        by later requests, and a NaN must not outlive the request that made it."""
        n = (end - start) // block
        if n <= 0:
            return []
        end = start + n * block
        shape = (n, len(self.layers), 2, self.n_kv, block, self.head_dim)
        staged = torch.empty(shape, dtype=self.dtype, device=self.device)
        split = (self.n_kv, n, block, self.head_dim)  # a view: only one axis is split
        for li, (k, v) in enumerate(zip(self.k_cache, self.v_cache, strict=True)):
            staged[:, li, 0].copy_(k[slot, :, start:end].view(split).transpose(0, 1))
            staged[:, li, 1].copy_(v[slot, :, start:end].view(split).transpose(0, 1))
        if not bool(torch.isfinite(staged).all()):
            return []
        return [b.clone() for b in staged.unbind(0)]

    @torch.inference_mode()
    def write_blocks(self, slot: int, blocks: list[torch.Tensor]) -> int:
        """Write ``blocks`` (from ``read_blocks``) to positions ``0..`` of ``slot``;
        returns how many positions that fills."""
        if not blocks:
            return 0
        n, block = len(blocks), blocks[0].shape[3]
        length = n * block
        self._ensure_capacity(length)
        stacked = torch.stack(blocks)  # (n, layers, 2, kv, block, D)
        split = (self.n_kv, n, block, self.head_dim)
        for li, (k, v) in enumerate(zip(self.k_cache, self.v_cache, strict=True)):
            k[slot, :, :length].view(split).copy_(stacked[:, li, 0].transpose(0, 1))
            v[slot, :, :length].view(split).copy_(stacked[:, li, 1].transpose(0, 1))
        return length

    def cache_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (*self.k_cache, *self.v_cache))

    # -- forward ---------------------------------------------------------------------------
    @torch.inference_mode()
    def step(self, decode: list[Chunk], prefill: list[Chunk], n_active: int) -> torch.Tensor:
        """Run one forward pass; return logits (float32) for rows with ``want_logits``:
        every decode row, then the last token of each prefill chunk that wants them.

        ``decode`` rows must come first and be ordered by ``lora_slot`` so adapters form
        contiguous runs.
        """
        chunks = decode + prefill
        ends = [c.start + len(c.tokens) for c in chunks]
        self._ensure_capacity(max(ends))
        tokens: list[int] = []
        positions: list[int] = []
        for c in chunks:
            tokens.extend(c.tokens)
            positions.extend(range(c.start, c.start + len(c.tokens)))
        dev = self.device
        ids = torch.tensor(tokens, dtype=torch.long, device=dev)
        pos = torch.tensor(positions, dtype=torch.long, device=dev)
        self.lora_ctx.set(_segments(chunks), self.n_lora_slots, self.dtype, self.device)

        n_dec = len(decode)
        dec_slots = torch.tensor([c.slot for c in decode], dtype=torch.long, device=dev)
        dec_pos = pos[:n_dec]
        # Decode attention spans the first n_active slots; non-decoding slots are dummies.
        t_dec = max((c.start + 1 for c in decode), default=1)
        dec_mask = torch.zeros(n_active, 1, 1, t_dec, dtype=torch.bool, device=dev)
        dec_mask[:, :, :, 0] = True  # dummy rows attend somewhere; their output is dropped
        for c in decode:
            dec_mask[c.slot, :, :, : c.start + 1] = True
        prefill_masks = [_prefill_mask(c, self.group, dev) for c in prefill]

        h = self.embed(ids)
        cos, sin = self.rotary(h.unsqueeze(0), pos.unsqueeze(0))
        cos, sin = cos[0].unsqueeze(1), sin[0].unsqueeze(1)  # (N, 1, D)
        n = h.shape[0]
        try:
            for li, calls in enumerate(self.calls):
                x = calls.input_norm(h)
                q = calls.q(x).view(n, self.n_heads, self.head_dim)
                k = calls.k(x).view(n, self.n_kv, self.head_dim)
                v = calls.v(x).view(n, self.n_kv, self.head_dim)
                q = q * cos + _rotate_half(q) * sin
                k = k * cos + _rotate_half(k) * sin
                kc, vc = self.k_cache[li], self.v_cache[li]
                out = torch.empty_like(q)
                if n_dec:
                    kc[dec_slots, :, dec_pos] = k[:n_dec]
                    vc[dec_slots, :, dec_pos] = v[:n_dec]
                    # (n_active, kv, group, D): one query per sequence, grouped per kv head.
                    qd = q.new_zeros(n_active, self.n_heads, self.head_dim)
                    qd[dec_slots] = q[:n_dec]
                    qd = qd.view(n_active, self.n_kv, self.group, self.head_dim)
                    od = F.scaled_dot_product_attention(
                        qd,
                        kc[:n_active, :, :t_dec],
                        vc[:n_active, :, :t_dec],
                        attn_mask=dec_mask,
                    )
                    out[:n_dec] = od.reshape(n_active, self.n_heads, self.head_dim)[dec_slots]
                off = n_dec
                for c, mask in zip(prefill, prefill_masks, strict=True):
                    m = len(c.tokens)
                    end = c.start + m
                    kc[c.slot, :, c.start : end] = k[off : off + m].transpose(0, 1)
                    vc[c.slot, :, c.start : end] = v[off : off + m].transpose(0, 1)
                    # (1, kv, group*m, D): query head h = kv*group + g, as in repeat_kv.
                    qp = q[off : off + m].view(m, self.n_kv, self.group, self.head_dim)
                    qp = qp.permute(1, 2, 0, 3).reshape(1, self.n_kv, self.group * m, -1)
                    op = F.scaled_dot_product_attention(
                        qp,
                        kc[c.slot : c.slot + 1, :, :end],
                        vc[c.slot : c.slot + 1, :, :end],
                        attn_mask=mask,
                    )
                    op = op.view(self.n_kv, self.group, m, self.head_dim).permute(2, 0, 1, 3)
                    out[off : off + m] = op.reshape(m, self.n_heads, self.head_dim)
                    off += m
                h = h + calls.o(out.view(n, -1))
                h = h + calls.mlp(calls.post_norm(h))
        finally:
            self.lora_ctx.clear()
        rows = list(range(n_dec))
        off = n_dec
        for c in prefill:
            if c.prompt_logits:
                every = self.norm(h[off : off + len(c.tokens)])
                c.position_logits = self.lm_head(every).float().cpu()
            off += len(c.tokens)
            if c.want_logits:
                rows.append(off - 1)
        if not rows:
            return torch.empty(0, self.lm_head.out_features)
        last = self.norm(h[rows])
        # Sampling runs on the CPU (per-request CPU generators); one copy per step.
        logits: torch.Tensor = self._head(last).float().cpu()
        return logits


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def _prefill_mask(c: Chunk, group: int, dev: torch.device) -> torch.Tensor:
    m = len(c.tokens)
    q_pos = torch.arange(c.start, c.start + m, device=dev)
    k_pos = torch.arange(c.start + m, device=dev)
    causal = k_pos.unsqueeze(0) <= q_pos.unsqueeze(1)  # (m, T)
    return causal.repeat(group, 1)  # rows ordered (group, m) like the reshaped queries


def _segments(chunks: list[Chunk]) -> list[Segment]:
    segs: list[Segment] = []
    off = 0
    for c in chunks:
        end = off + len(c.tokens)
        if c.lora_slot >= 0:
            if segs and segs[-1].slot == c.lora_slot and segs[-1].end == off:
                segs[-1].end = end
            else:
                segs.append(Segment(off, end, c.lora_slot))
        off = end
    return segs
