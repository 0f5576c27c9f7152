"""Logic of POST /v1/completions: returns values, never raises HTTP errors."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request

from hearth_server.api.errors import ErrorResponse, bad_request
from hearth_server.api.generation import (
    Delta,
    Generation,
    check_fanout,
    check_params,
    collect_choices,
    fit_max_tokens,
    resolve_target,
    stream_deltas,
)
from hearth_server.api.openai.completions.protocol import CompletionRequest
from hearth_server.api.openai.protocol import openai_sse, usage
from hearth_server.api.state import ServerState
from hearth_server.engine.params import SamplingParams, TokenLogprob


def completion_logprobs(tokenizer: Any, lps: list[TokenLogprob], offset: int) -> dict[str, Any]:
    tokens, values, tops, offsets = [], [], [], []
    for lp in lps:
        text = tokenizer.decode([lp.token_id])
        tokens.append(text)
        values.append(lp.logprob)
        tops.append({tokenizer.decode([t]): v for t, v in lp.top})
        offsets.append(offset)
        offset += len(text)
    return {
        "tokens": tokens,
        "token_logprobs": values,
        "top_logprobs": tops,
        "text_offset": offsets,
    }


def _tokenize(tok: Any, prompts: list[str | list[int]]) -> list[list[int]] | ErrorResponse:
    vocab = len(tok)
    out = []
    for i, p in enumerate(prompts):
        if isinstance(p, str):
            out.append(list(tok(p)["input_ids"]))
        elif any(t < 0 or t >= vocab for t in p):
            return bad_request(f"token ids must be in [0, {vocab})", f"prompt[{i}]")
        else:
            out.append(list(p))
    return out


async def create_completion(
    state: ServerState, req: CompletionRequest, raw: Request | None
) -> ErrorResponse | dict[str, Any] | AsyncIterator[str]:
    problem = req.completion_unsupported()
    if problem is not None:
        return bad_request(problem[1], problem[0])
    target = resolve_target(state, req.model)
    if isinstance(target, ErrorResponse):
        return target
    texts = req.prompts()
    count = f"{len(texts)} prompts x n={req.n}"
    err = check_fanout(state, len(texts) * req.n, "prompt", count)
    if err is not None:
        return err
    prompts = await state.off_loop(_tokenize, state.tokenizer, texts)
    if isinstance(prompts, ErrorResponse):
        return prompts
    items: list[tuple[list[int], SamplingParams]] = []
    for ids in prompts:
        budget = fit_max_tokens(
            state, len(ids), req.max_tokens, req.context_length_exceeded_behavior, "prompt"
        )
        if isinstance(budget, ErrorResponse):
            return budget
        params = req.to_sampling_params(budget, req.logprobs)
        err = check_params(state, params)
        if err is not None:
            return err
        items.extend((ids, req.seeded(params, i)) for i in range(req.n))
    assert state.engine is not None
    gen = Generation(state.engine, items, target)
    err = gen.start()
    if err is not None:
        return err
    meta = {
        "id": f"cmpl-{uuid.uuid4().hex}",
        "created": int(time.time()),
        "model": req.model or state.settings.model_name,
    }
    prompt_tokens = sum(len(ids) for ids in prompts)
    echoes = [state.tokenizer.decode(ids) if req.echo else "" for ids, _ in items]
    if req.stream:
        return _stream(state, req, gen, meta, prompt_tokens, echoes)
    choices = await collect_choices(gen, raw)
    if isinstance(choices, ErrorResponse):
        return choices
    return {
        **meta,
        "object": "text_completion",
        "choices": [
            {
                "index": c.index,
                "text": echoes[c.index] + c.text,
                "logprobs": completion_logprobs(state.tokenizer, c.logprobs, 0)
                if req.logprobs is not None
                else None,
                "finish_reason": c.finish_reason,
            }
            for c in choices
        ],
        "usage": usage(
            prompt_tokens, sum(c.completion_tokens for c in choices), gen.cached_tokens
        ).model_dump(),
    }


def _stream(
    state: ServerState,
    req: CompletionRequest,
    gen: Generation,
    meta: dict[str, Any],
    prompt_tokens: int,
    echoes: list[str],
) -> AsyncIterator[str]:
    offsets = [0] * len(echoes)

    def choice(d: Delta) -> dict[str, Any]:
        lps = None
        if req.logprobs is not None:
            lps = completion_logprobs(state.tokenizer, d.logprobs, offsets[d.index])
        offsets[d.index] += len(d.text)
        return {"index": d.index, "text": d.text, "logprobs": lps, "finish_reason": d.finish_reason}

    # With echo, each choice opens with its prompt.
    first = [
        {"index": i, "text": text, "logprobs": None, "finish_reason": None}
        for i, text in enumerate(echoes)
        if text
    ]
    base = {**meta, "object": "text_completion"}
    return openai_sse(
        stream_deltas(gen),
        base,
        first,
        choice,
        req.stream_options,
        prompt_tokens,
        cached=lambda: gen.cached_tokens,
    )
