"""Logic of POST /v1/completions: returns values, never raises HTTP errors."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
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
from hearth_server.api.structured import structured_from_openai, warm_grammar
from hearth_server.engine.params import ParamError, SamplingParams, TokenLogprob


def completion_logprobs(
    tokenizer: Any,
    lps: list[TokenLogprob],
    offset: int,
    prompt: list[tuple[int, TokenLogprob | None]] | None = None,
) -> dict[str, Any]:
    """OpenAI's completions logprobs. ``prompt``: echoed prompt tokens first, each with
    its logprob (None for the very first token of the prompt, which nothing scores)."""
    tokens: list[str] = []
    values: list[float | None] = []
    tops: list[dict[str, float] | None] = []
    offsets: list[int] = []
    items = [*(prompt or []), *((lp.token_id, lp) for lp in lps)]
    for token_id, lp in items:
        text = tokenizer.decode([token_id])
        tokens.append(text)
        values.append(None if lp is None else lp.logprob)
        tops.append(None if lp is None else {tokenizer.decode([t]): v for t, v in lp.top})
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
    try:
        structured = structured_from_openai(req.response_format)
    except ParamError as exc:
        return bad_request(str(exc), exc.param)
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
        params = replace(req.to_sampling_params(budget, req.logprobs), structured=structured)
        if req.echoes and req.logprobs is not None:
            params.prompt_logprobs = req.logprobs  # the echoed tokens carry logprobs too
        err = check_params(state, params)
        if err is not None:
            return err
        items.extend((ids, req.seeded(params, i)) for i in range(req.n))
    assert state.engine is not None
    await warm_grammar(state, structured)
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
    echoed = [req.echoed(ids) for ids, _ in items]
    echoes = [state.tokenizer.decode(ids) if ids else "" for ids in echoed]
    if req.stream:
        return _stream(state, req, gen, meta, prompt_tokens, echoed, echoes)
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
                "logprobs": completion_logprobs(
                    state.tokenizer, c.logprobs, 0, _echo_scores(echoed[c.index], c.prompt_logprobs)
                )
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


def _echo_scores(
    echoed: list[int], scores: list[TokenLogprob | None] | None
) -> list[tuple[int, TokenLogprob | None]] | None:
    """The echoed prompt tokens with their logprobs (the prompt's last ones)."""
    if not echoed or scores is None:
        return None
    return list(zip(echoed, scores[len(scores) - len(echoed) :], strict=True))


def _stream(
    state: ServerState,
    req: CompletionRequest,
    gen: Generation,
    meta: dict[str, Any],
    prompt_tokens: int,
    echoed: list[list[int]],
    echoes: list[str],
) -> AsyncIterator[str]:
    offsets = [0] * len(echoes)
    # With logprobs the echo waits for the first token, which brings the prompt's scores.
    late_echo = req.logprobs is not None

    def choice(d: Delta) -> dict[str, Any]:
        lps = None
        text = d.text
        if late_echo and d.prompt_logprobs is not None:
            text = echoes[d.index] + text
        if req.logprobs is not None:
            prompt = _echo_scores(echoed[d.index], d.prompt_logprobs)
            lps = completion_logprobs(state.tokenizer, d.logprobs, offsets[d.index], prompt)
        offsets[d.index] += len(text)
        return {"index": d.index, "text": text, "logprobs": lps, "finish_reason": d.finish_reason}

    # With echo, each choice opens with its prompt.
    first = [
        {"index": i, "text": text, "logprobs": None, "finish_reason": None}
        for i, text in enumerate(echoes)
        if text and not late_echo
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
