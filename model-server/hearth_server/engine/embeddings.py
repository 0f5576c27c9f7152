"""Sentence embeddings from the served base model, computed on the engine thread.

Pooling: the mean of the final (normalised) hidden states over the input's tokens,
L2-normalised. For a decoder-only model every token's state has seen the whole prefix,
so the mean uses all of the input, and it matches what ``transformers.AutoModel`` plus
the same pooling computes on the same weights.

Why the engine thread: the LoRA wrappers read a context the engine sets for each step.
A forward run from another thread in the middle of a step would pick up that step's
adapter layout. So an embedding request is a job the engine runs between two steps, a
micro-batch of at most ``token_budget`` tokens at a time; long jobs never stall
decoding for more than one micro-batch.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.nn import functional as F

log = logging.getLogger(__name__)

# Called once per job, on the engine thread: (vectors (n, hidden) float32, None) or
# (None, why it failed).
Deliver = Callable[[torch.Tensor | None, str | None], None]


@dataclass(eq=False)
class EmbeddingJob:
    inputs: list[list[int]]
    deliver: Deliver
    done: int = 0  # inputs embedded so far
    cancelled: bool = False  # set by the waiting handler when its client has gone
    vectors: list[torch.Tensor] = field(default_factory=list)


def mean_pool(hidden: torch.Tensor, lengths: list[int]) -> torch.Tensor:
    """(B, T, H) right-padded states -> (B, H) L2-normalised means over each row's tokens."""
    t = hidden.shape[1]
    mask = torch.arange(t, device=hidden.device).unsqueeze(0) < torch.tensor(
        lengths, device=hidden.device
    ).unsqueeze(1)
    weights = mask.to(hidden.dtype).unsqueeze(-1)
    means = (hidden * weights).sum(dim=1) / weights.sum(dim=1)
    return F.normalize(means.float(), dim=-1)


def truncate(vectors: torch.Tensor, dimensions: int | None) -> torch.Tensor:
    """Matryoshka-style: keep the first ``dimensions`` components and renormalise."""
    if dimensions is None or dimensions >= vectors.shape[-1]:
        return vectors
    return F.normalize(vectors[:, :dimensions], dim=-1)


def next_batch(inputs: list[list[int]], start: int, token_budget: int) -> int:
    """End index of the micro-batch beginning at ``start``: padded size (rows x longest)
    at most ``token_budget``, and always at least one input."""
    end, longest = start, 0
    while end < len(inputs):
        longest_next = max(longest, len(inputs[end]))
        if end > start and longest_next * (end - start + 1) > token_budget:
            break
        longest, end = longest_next, end + 1
    return end


class EmbeddingQueue:
    """Jobs waiting for the engine thread. ``add`` may be called from any thread (the
    engine's inbox lock orders it with the loop's shutdown); the rest only on the
    engine thread."""

    def __init__(self, model: torch.nn.Module, token_budget: int) -> None:
        hf: Any = model  # transformers modules are untyped: the decoder is ``model.model``
        self.decoder = hf.model
        self.hidden_size = int(hf.config.hidden_size)
        self.device: torch.device = hf.model.embed_tokens.weight.device
        self.token_budget = token_budget
        self.jobs: deque[EmbeddingJob] = deque()

    def __bool__(self) -> bool:
        return bool(self.jobs)

    def run_one_batch(self) -> None:
        """Embed the next micro-batch of the oldest job; deliver the job when complete.
        A failure fails that job only."""
        job = self.jobs[0]
        if job.cancelled:
            self.jobs.popleft()
            return
        end = next_batch(job.inputs, job.done, self.token_budget)
        try:
            job.vectors.append(self.embed(job.inputs[job.done : end]))
        except Exception as exc:
            log.exception("embedding job failed")
            self.jobs.popleft()
            _deliver(job, None, f"embedding failed: {exc!r}")
            return
        job.done = end
        if job.done == len(job.inputs):
            self.jobs.popleft()
            _deliver(job, torch.cat(job.vectors), None)

    def embed(self, batch: list[list[int]]) -> torch.Tensor:
        """(len(batch), hidden) float32 unit vectors on the CPU."""
        lengths = [len(ids) for ids in batch]
        longest = max(lengths)
        # Right padding needs no attention mask: attention is causal, so real tokens
        # never see the pads after them, and pooling skips the pads' own states.
        padded = [ids + [0] * (longest - len(ids)) for ids in batch]
        ids = torch.tensor(padded, dtype=torch.long, device=self.device)
        out = self.decoder(input_ids=ids, use_cache=False)
        return mean_pool(out.last_hidden_state, lengths).cpu()

    def fail_all(self, reason: str) -> None:
        while self.jobs:
            _deliver(self.jobs.popleft(), None, reason)


def _deliver(job: EmbeddingJob, vectors: torch.Tensor | None, error: str | None) -> None:
    try:
        job.deliver(vectors, error)
    except Exception:  # the waiting handler is gone; nothing else to tell
        log.exception("embedding consumer failed")
