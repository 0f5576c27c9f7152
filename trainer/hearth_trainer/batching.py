"""Token-budget, length-grouped batching: the trainer's throughput lever.

A batch holds examples of similar length, so padding to the longest row wastes little,
and ``rows x longest <= batch_tokens`` (Fireworks' batchSize counts tokens). Unlike
packing several examples into one row, rows never attend across examples, so no
block-diagonal mask is needed and attention cost stays per-example; the loss is exactly
the per-example loss.

Order is random but fully determined by (seed, epoch): examples are shuffled, sorted by
length inside windows of ``window`` examples (so similar lengths meet while the order
stays mixed), cut into batches, and the batches shuffled again.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

#: Examples sorted together; larger windows mean less padding but less randomness.
DEFAULT_WINDOW = 512


@dataclass(frozen=True)
class Batch:
    indices: tuple[int, ...]  # into the tokenized example list
    width: int  # longest example in the batch (tokens per row after padding)

    @property
    def padded_tokens(self) -> int:
        return len(self.indices) * self.width


def plan_epoch(
    lengths: Sequence[int],
    batch_tokens: int,
    seed: int,
    epoch: int,
    max_samples: int | None = None,
    window: int = DEFAULT_WINDOW,
) -> list[Batch]:
    """Batches for one epoch. An example longer than ``batch_tokens`` gets a batch alone."""
    rng = random.Random(f"{seed}/{epoch}")
    order = list(range(len(lengths)))
    rng.shuffle(order)
    batches: list[Batch] = []
    for w in range(0, len(order), window):
        chunk = sorted(order[w : w + window], key=lambda i: lengths[i], reverse=True)
        batches.extend(_cut(chunk, lengths, batch_tokens, max_samples))
    rng.shuffle(batches)
    return batches


def _cut(
    chunk: list[int], lengths: Sequence[int], batch_tokens: int, max_samples: int | None
) -> list[Batch]:
    """Greedy cut of a length-descending chunk: the first row fixes the batch width."""
    out: list[Batch] = []
    current: list[int] = []
    width = 0
    for i in chunk:
        w = max(width, lengths[i])
        full = (len(current) + 1) * w > batch_tokens or (
            max_samples is not None and len(current) >= max_samples
        )
        if current and full:
            out.append(Batch(tuple(current), width))
            current, w = [], lengths[i]
        current.append(i)
        width = w
    if current:
        out.append(Batch(tuple(current), width))
    return out


def split_rows(batch: Batch, lengths: Sequence[int], micro_tokens: int) -> list[Batch]:
    """Split a batch into micro-batches of at most ``micro_tokens`` padded tokens, so a
    large batchSize does not need the memory of one huge forward pass. Gradients are
    accumulated, and the loss is normalised per optimizer step, so the result is the
    same as one pass."""
    rows_per = max(1, micro_tokens // max(1, batch.width))
    parts: list[Batch] = []
    for s in range(0, len(batch.indices), rows_per):
        idx = batch.indices[s : s + rows_per]
        parts.append(Batch(idx, max(lengths[i] for i in idx)))
    return parts


def padding_ratio(batches: Sequence[Batch], lengths: Sequence[int]) -> float:
    """Real tokens / padded tokens (1.0 = no padding)."""
    padded = sum(b.padded_tokens for b in batches)
    real = sum(lengths[i] for b in batches for i in b.indices)
    return real / padded if padded else 1.0
