"""Logic of POST /v1/completions: returns values, never raises HTTP errors."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request

from hearth_server.api.errors import ErrorResponse, bad_request
from hearth_server.api.generation import (
    Generation,
    check_params,
    engine_error,
    fit_max_tokens,
    resolve_target,
)
from hearth_server.api.openai.completions.protocol import CompletionRequest
from hearth_server.api.openai.protocol import dump, usage
from hearth_server.api.state import ServerState
from hearth_server.engine.params import SamplingParams, StepOutput, TokenLogprob


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


def _tokenize(
    state: ServerState, prompts: list[str | list[int]]
) -> list[list[int]] | ErrorResponse:
    tok = state.tokenizer
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
    prompts = _tokenize(state, req.prompts())
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
        err = check_params(params)
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
    outs = await gen.collect(raw)
    choices = []
    completion = 0
    for index, steps in enumerate(outs):
        failed = next((e for e in map(engine_error, steps) if e is not None), None)
        if failed is not None:
            return failed
        completion += steps[-1].completion_tokens if steps else 0
        lps = [lp for s in steps for lp in s.logprobs]
        choices.append(
            {
                "index": index,
                "text": echoes[index] + "".join(s.text for s in steps),
                "logprobs": completion_logprobs(state.tokenizer, lps, 0)
                if req.logprobs is not None
                else None,
                "finish_reason": _reason(steps[-1]) if steps else "abort",
            }
        )
    return {
        **meta,
        "object": "text_completion",
        "choices": choices,
        "usage": usage(prompt_tokens, completion).model_dump(),
    }


def _reason(out: StepOutput) -> str | None:
    return out.finish_reason if out.finished else None


async def _stream(
    state: ServerState,
    req: CompletionRequest,
    gen: Generation,
    meta: dict[str, Any],
    prompt_tokens: int,
    echoes: list[str],
) -> AsyncIterator[str]:
    base = {**meta, "object": "text_completion"}
    opts = req.stream_options
    completion = [0] * len(echoes)
    offsets = [0] * len(echoes)
    for i, text in enumerate(echoes):
        if text:
            yield dump(
                {
                    **base,
                    "choices": [
                        {"index": i, "text": text, "logprobs": None, "finish_reason": None}
                    ],
                }
            )
    async for index, out in gen.stream():
        failed = engine_error(out)
        if failed is not None:
            yield dump(failed)
            break
        completion[index] = out.completion_tokens or completion[index]
        if not out.text and not out.finished and not out.logprobs:
            continue
        lps = None
        if req.logprobs is not None:
            lps = completion_logprobs(state.tokenizer, out.logprobs, offsets[index])
        offsets[index] += len(out.text)
        chunk: dict[str, Any] = {
            **base,
            "choices": [
                {
                    "index": index,
                    "text": out.text,
                    "logprobs": lps,
                    "finish_reason": _reason(out),
                }
            ],
        }
        if opts and opts.continuous_usage_stats:
            chunk["usage"] = usage(prompt_tokens, sum(completion)).model_dump()
        yield dump(chunk)
    if opts and opts.include_usage:
        yield dump(
            {**base, "choices": [], "usage": usage(prompt_tokens, sum(completion)).model_dump()}
        )
    yield "data: [DONE]\n\n"
