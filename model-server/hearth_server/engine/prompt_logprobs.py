"""Logprobs of the prompt's own tokens (completions ``echo`` with ``logprobs``).

The logits at prompt position ``j`` score the token at ``j + 1``; the first prompt
token has no context and gets ``None``, as in OpenAI's echoed logprobs. Like sampled
tokens' logprobs they come from the model's raw distribution.
"""

from __future__ import annotations

import torch

from hearth_server.engine.params import TokenLogprob


def score_chunk(
    logits: torch.Tensor, prompt: list[int], start: int, n_top: int
) -> list[TokenLogprob | None]:
    """Entries for the prompt tokens a prefill chunk's logits score: ``logits`` (m, V)
    are those of positions ``start..start+m-1``. The chunk at ``start == 0`` also
    yields the first token's ``None``."""
    out: list[TokenLogprob | None] = [None] if start == 0 else []
    m = min(logits.shape[0], len(prompt) - 1 - start)  # the last position scores output
    if m <= 0:
        return out
    logprobs = torch.log_softmax(logits[:m].float(), dim=-1)
    targets = torch.tensor(prompt[start + 1 : start + 1 + m], dtype=torch.long)
    chosen = logprobs.gather(1, targets.unsqueeze(1)).squeeze(1).tolist()
    tops: list[list[tuple[int, float]]] = [[] for _ in range(m)]
    k = min(n_top, logprobs.shape[-1])
    if k > 0:
        vals, idx = torch.topk(logprobs, k, dim=-1)
        tops = [
            list(zip(i, v, strict=True)) for i, v in zip(idx.tolist(), vals.tolist(), strict=True)
        ]
    for t, lp, top in zip(targets.tolist(), chosen, tops, strict=True):
        out.append(TokenLogprob(t, float(lp), top))
    return out
