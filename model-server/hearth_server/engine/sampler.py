"""Turn a batch of logits into next tokens, honouring each row's own sampling params."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from hearth_server.engine.params import SamplingParams, TokenLogprob


@dataclass
class RowState:
    params: SamplingParams
    prompt_ids: list[int]
    output_ids: list[int]
    generator: torch.Generator | None
    banned: list[int]  # token ids masked out this step (e.g. EOS before min_tokens)


def sample(
    logits: torch.Tensor, rows: list[RowState]
) -> tuple[list[int], list[TokenLogprob | None]]:
    """``logits``: (R, V) float32. Greedy rows take the argmax of the processed logits.

    Logprobs are reported from the model's raw distribution (before penalties and
    temperature), as vLLM does by default.
    """
    raw_logprobs = None
    if any(r.params.logprobs is not None for r in rows):
        raw_logprobs = torch.log_softmax(logits, dim=-1)
    tokens: list[int] = []
    for i, row in enumerate(rows):
        tokens.append(_sample_row(logits[i], row))
    lps: list[TokenLogprob | None] = []
    for i, row in enumerate(rows):
        if raw_logprobs is None or row.params.logprobs is None:
            lps.append(None)
            continue
        lp = raw_logprobs[i]
        top: list[tuple[int, float]] = []
        if row.params.logprobs > 0:
            vals, idx = torch.topk(lp, row.params.logprobs)
            top = list(zip(idx.tolist(), vals.tolist(), strict=True))
        lps.append(TokenLogprob(tokens[i], float(lp[tokens[i]]), top))
    return tokens, lps


def _sample_row(logits: torch.Tensor, row: RowState) -> int:
    p = row.params
    needs_copy = (
        row.banned or p.repetition_penalty != 1.0 or p.presence_penalty or p.frequency_penalty
    )
    if needs_copy:
        logits = logits.clone()
        _apply_penalties(logits, row)
        if row.banned:
            logits[row.banned] = -float("inf")
    if p.greedy:
        return int(torch.argmax(logits))
    logits = logits / p.temperature
    if p.top_k > 0:
        k = min(p.top_k, logits.shape[-1])
        kth = torch.topk(logits, k).values[-1]
        logits = logits.masked_fill(logits < kth, -float("inf"))
    probs = torch.softmax(logits, dim=-1)
    if p.min_p > 0:
        probs = probs.masked_fill(probs < p.min_p * probs.max(), 0.0)
    if p.top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True)
        cum = torch.cumsum(sorted_probs, dim=-1)
        # Keep the smallest prefix whose mass reaches top_p (always at least one token).
        drop = (cum - sorted_probs) >= p.top_p
        sorted_probs = sorted_probs.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter_(0, order, sorted_probs)
    return int(torch.multinomial(probs, 1, generator=row.generator))


def _apply_penalties(logits: torch.Tensor, row: RowState) -> None:
    p = row.params
    vocab = logits.shape[-1]
    if p.repetition_penalty != 1.0:
        seen = torch.tensor(sorted(set(row.prompt_ids) | set(row.output_ids)), dtype=torch.long)
        seen = seen[seen < vocab]
        if seen.numel():
            vals = logits[seen]
            logits[seen] = torch.where(
                vals > 0, vals / p.repetition_penalty, vals * p.repetition_penalty
            )
    if (p.presence_penalty or p.frequency_penalty) and row.output_ids:
        out = torch.tensor(row.output_ids, dtype=torch.long)
        counts = torch.bincount(out[out < vocab], minlength=vocab).to(logits.dtype)
        logits -= p.frequency_penalty * counts + p.presence_penalty * (counts > 0).to(logits.dtype)
