"""Logic of POST /v1/chat/completions: returns values, never raises HTTP errors."""

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
from hearth_server.api.openai.chat.protocol import ChatCompletionRequest
from hearth_server.api.openai.protocol import dump, usage
from hearth_server.api.state import ServerState
from hearth_server.engine.params import StepOutput, TokenLogprob


def apply_chat_template(tokenizer: Any, conversation: list[dict[str, str]]) -> list[int]:
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError("this model has no chat template; use /v1/completions")
    continue_final = conversation[-1]["role"] == "assistant"
    ids = tokenizer.apply_chat_template(
        conversation,
        add_generation_prompt=not continue_final,
        continue_final_message=continue_final,
        tokenize=True,
    )
    if isinstance(ids, dict):  # some tokenizers return a BatchEncoding
        ids = ids["input_ids"]
    return list(ids)


def chat_logprobs(tokenizer: Any, lps: list[TokenLogprob]) -> dict[str, Any]:
    def entry(tok: int, lp: float) -> dict[str, Any]:
        text = tokenizer.decode([tok])
        return {"token": text, "logprob": lp, "bytes": list(text.encode())}

    return {
        "content": [
            {**entry(lp.token_id, lp.logprob), "top_logprobs": [entry(t, v) for t, v in lp.top]}
            for lp in lps
        ]
    }


async def create_chat_completion(
    state: ServerState, req: ChatCompletionRequest, raw: Request | None
) -> ErrorResponse | dict[str, Any] | AsyncIterator[str]:
    problem = req.chat_unsupported()
    if problem is not None:
        return bad_request(problem[1], problem[0])
    target = resolve_target(state, req.model)
    if isinstance(target, ErrorResponse):
        return target
    try:
        prompt = apply_chat_template(state.tokenizer, req.conversation())
    except ValueError as exc:
        return bad_request(str(exc), "messages")
    wanted = req.max_completion_tokens if req.max_completion_tokens is not None else req.max_tokens
    budget = fit_max_tokens(
        state, len(prompt), wanted, req.context_length_exceeded_behavior, "messages"
    )
    if isinstance(budget, ErrorResponse):
        return budget
    top = (req.top_logprobs or 0) if req.logprobs else None
    params = req.to_sampling_params(budget, top)
    err = check_params(params)
    if err is not None:
        return err
    assert state.engine is not None
    gen = Generation(state.engine, [(prompt, req.seeded(params, i)) for i in range(req.n)], target)
    err = gen.start()
    if err is not None:
        return err
    meta = {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "created": int(time.time()),
        "model": req.model or state.settings.model_name,
    }
    if req.stream:
        return _stream(state, req, gen, meta, len(prompt))
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
                "message": {"role": "assistant", "content": "".join(s.text for s in steps)},
                "logprobs": chat_logprobs(state.tokenizer, lps) if req.logprobs else None,
                "finish_reason": _reason(steps[-1]) if steps else "abort",
            }
        )
    return {
        **meta,
        "object": "chat.completion",
        "choices": choices,
        "usage": usage(len(prompt), completion).model_dump(),
    }


def _reason(out: StepOutput) -> str | None:
    return out.finish_reason if out.finished else None


async def _stream(
    state: ServerState,
    req: ChatCompletionRequest,
    gen: Generation,
    meta: dict[str, Any],
    prompt_len: int,
) -> AsyncIterator[str]:
    base = {**meta, "object": "chat.completion.chunk"}
    opts = req.stream_options
    include_usage = bool(opts and opts.include_usage)
    continuous = bool(opts and opts.continuous_usage_stats)
    completion = [0] * req.n
    for i in range(req.n):
        yield dump(
            {
                **base,
                "choices": [
                    {
                        "index": i,
                        "delta": {"role": "assistant", "content": ""},
                        "logprobs": None,
                        "finish_reason": None,
                    }
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
        chunk: dict[str, Any] = {
            **base,
            "choices": [
                {
                    "index": index,
                    "delta": {"content": out.text} if out.text or not out.finished else {},
                    "logprobs": chat_logprobs(state.tokenizer, out.logprobs)
                    if req.logprobs
                    else None,
                    "finish_reason": _reason(out),
                }
            ],
        }
        if continuous:
            chunk["usage"] = usage(prompt_len, sum(completion)).model_dump()
        yield dump(chunk)
    if include_usage:
        yield dump(
            {**base, "choices": [], "usage": usage(prompt_len, sum(completion)).model_dump()}
        )
    yield "data: [DONE]\n\n"
