"""Turn a batch of logits into next tokens, honouring each row's own sampling params.

Rows are independent: a row whose logits are not finite (a diverging adapter, an
overflow), or that bans every token, fails on its own with an error message; the other
rows of the batch are sampled as usual.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from hearth_server.engine.params import SamplingParams, TokenLogprob
from hearth_server.engine.structured import Constraint, GrammarError


@dataclass
class RowState:
    params: SamplingParams
    prompt_ids: list[int]
    output_ids: list[int]
    generator: torch.Generator | None
    banned: list[int]  # token ids masked out this step (e.g. EOS before min_tokens)
    constraint: Constraint | None = None  # structured output: the grammar's allowed tokens


@dataclass
class Sampled:
    """One row's result: a token (with logprobs when asked), or ``error`` and no token."""

    token: int | None
    logprob: TokenLogprob | None = None
    error: str | None = None


class RowError(Exception):
    """This row cannot be sampled; the message is shown to its client."""


NON_FINITE = "the model produced non-finite logits (NaN or infinity) for this request"


def sample(logits: torch.Tensor, rows: list[RowState]) -> list[Sampled]:
    """``logits``: (R, V) float32. Greedy rows take the argmax of the processed logits.

    Logprobs are reported from the model's raw distribution (before penalties and
    temperature), as vLLM does by default.
    """
    finite = torch.isfinite(logits).all(dim=-1).tolist() if rows else []
    raw_logprobs = None
    if any(r.params.logprobs is not None for r in rows):
        raw_logprobs = torch.log_softmax(logits, dim=-1)
    results: list[Sampled] = []
    for i, row in enumerate(rows):
        if not finite[i]:
            results.append(Sampled(None, error=NON_FINITE))
            continue
        try:
            token = _sample_row(logits[i], row)
        except RowError as exc:
            results.append(Sampled(None, error=str(exc)))
            continue
        lp = None
        if raw_logprobs is not None and row.params.logprobs is not None:
            lp = _logprob(raw_logprobs[i], token, row.params.logprobs)
        results.append(Sampled(token, lp))
    return results


def _logprob(lp: torch.Tensor, token: int, n_top: int) -> TokenLogprob:
    top: list[tuple[int, float]] = []
    k = min(n_top, lp.shape[-1])
    if k > 0:
        vals, idx = torch.topk(lp, k)
        top = list(zip(idx.tolist(), vals.tolist(), strict=True))
    return TokenLogprob(token, float(lp[token]), top)


def _sample_row(logits: torch.Tensor, row: RowState) -> int:
    p = row.params
    vocab = logits.shape[-1]
    # Out-of-vocabulary ids are refused at submit; ignore any that get here anyway.
    banned = [t for t in row.banned if 0 <= t < vocab]
    needs_copy = (
        banned
        or p.logit_bias
        or p.repetition_penalty != 1.0
        or p.presence_penalty
        or p.frequency_penalty
    )
    if row.constraint is not None:
        # The grammar goes first: penalties, temperature and top-k/p only ever choose
        # among tokens that keep the output valid.
        logits = _constrain(logits, row.constraint)
    elif needs_copy:
        logits = logits.clone()
    if needs_copy:
        _apply_penalties(logits, row)
        _apply_bias(logits, p.logit_bias)
        if banned:
            logits[banned] = -float("inf")
    best = float(logits.max())
    if best == -float("inf"):
        raise RowError("every token of the vocabulary is banned for this request")
    if not math.isfinite(best):  # NaN or +inf: torch's max propagates NaN
        raise RowError(NON_FINITE)
    if p.greedy:
        return int(torch.argmax(logits))
    # Subtracting the maximum first keeps every scaled logit <= 0: no overflow to inf.
    logits = (logits - best) / p.effective_temperature
    if p.top_k > 0:
        k = min(p.top_k, vocab)
        kth = torch.topk(logits, k).values[-1]
        logits = logits.masked_fill(logits < kth, -float("inf"))
    probs = torch.softmax(logits, dim=-1)
    if p.min_p > 0:
        probs = probs.masked_fill(probs < p.min_p * probs.max(), 0.0)
    if p.typical_p < 1.0:
        probs = _typical(probs, p.typical_p)
    if p.top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True)
        cum = torch.cumsum(sorted_probs, dim=-1)
        # Keep the smallest prefix whose mass reaches top_p (always at least one token).
        drop = (cum - sorted_probs) >= p.top_p
        drop[0] = False  # a top_p below float32's range would compare as 0 and drop all
        sorted_probs = sorted_probs.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter_(0, order, sorted_probs)
    total = float(probs.sum())
    if not total > 0.0 or not torch.isfinite(probs).all():
        raise RowError(NON_FINITE)
    return int(torch.multinomial(probs, 1, generator=row.generator))


def _constrain(logits: torch.Tensor, constraint: Constraint) -> torch.Tensor:
    """A copy of ``logits`` with every token the grammar refuses next set to -inf."""
    try:
        return constraint.mask(logits)
    except GrammarError as exc:  # a grammar too complex to follow here, or a dead end
        raise RowError(str(exc)) from None


def _apply_bias(logits: torch.Tensor, bias: dict[int, float]) -> None:
    """OpenAI's logit_bias: add each value to its token's logit (ids are checked at
    submit; -100 all but bans a token, +100 all but forces it)."""
    if bias:
        ids = torch.tensor(list(bias), dtype=torch.long)
        logits[ids] += torch.tensor(list(bias.values()), dtype=logits.dtype)


def _typical(probs: torch.Tensor, mass: float) -> torch.Tensor:
    """Locally typical sampling: keep the tokens whose surprise is closest to the
    distribution's entropy, the fewest whose probability reaches ``mass``."""
    logp = torch.log(probs.clamp_min(1e-30))
    entropy = -(probs * logp).sum()
    order = torch.argsort((-logp - entropy).abs())
    sorted_probs = probs[order]
    cum = torch.cumsum(sorted_probs, dim=-1)
    drop = (cum - sorted_probs) >= mass
    drop[0] = False  # always keep one (a mass below float32's range compares as 0)
    kept = sorted_probs.masked_fill(drop, 0.0)
    return torch.zeros_like(probs).scatter_(0, order, kept)


def _apply_penalties(logits: torch.Tensor, row: RowState) -> None:
    p = row.params
    vocab = logits.shape[-1]
    if p.repetition_penalty != 1.0:
        seen = torch.tensor(sorted(set(row.prompt_ids) | set(row.output_ids)), dtype=torch.long)
        seen = seen[(seen >= 0) & (seen < vocab)]
        if seen.numel():
            vals = logits[seen]
            logits[seen] = torch.where(
                vals > 0, vals / p.repetition_penalty, vals * p.repetition_penalty
            )
    if (p.presence_penalty or p.frequency_penalty) and row.output_ids:
        out = torch.tensor(row.output_ids, dtype=torch.long)
        out = out[(out >= 0) & (out < vocab)]
        counts = torch.bincount(out, minlength=vocab).to(logits.dtype)
        logits -= p.frequency_penalty * counts + p.presence_penalty * (counts > 0).to(logits.dtype)
