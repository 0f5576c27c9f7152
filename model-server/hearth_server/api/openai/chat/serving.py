"""Logic of POST /v1/chat/completions: returns values, never raises HTTP errors."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request
from jinja2 import TemplateError

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
from hearth_server.api.openai.chat.protocol import ChatCompletionRequest
from hearth_server.api.openai.protocol import openai_sse, usage
from hearth_server.api.state import ServerState
from hearth_server.engine.params import TokenLogprob


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


async def chat_prompt(
    state: ServerState, conversation: list[dict[str, str]]
) -> list[int] | ErrorResponse:
    """The conversation through the model's chat template, tokenised off the event loop.
    A template that refuses the conversation (e.g. roles that do not alternate) is a 400."""
    try:
        return await state.off_loop(apply_chat_template, state.tokenizer, conversation)
    except (ValueError, TemplateError) as exc:
        return bad_request(f"the chat template refused these messages: {exc}", "messages")


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
    err = check_fanout(state, req.n, "n", f"n={req.n} choices")
    if err is not None:
        return err
    prompt = await chat_prompt(state, req.conversation())
    if isinstance(prompt, ErrorResponse):
        return prompt
    wanted = req.max_completion_tokens if req.max_completion_tokens is not None else req.max_tokens
    budget = fit_max_tokens(
        state, len(prompt), wanted, req.context_length_exceeded_behavior, "messages"
    )
    if isinstance(budget, ErrorResponse):
        return budget
    top = (req.top_logprobs or 0) if req.logprobs else None
    params = req.to_sampling_params(budget, top)
    err = check_params(state, params)
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
    choices = await collect_choices(gen, raw)
    if isinstance(choices, ErrorResponse):
        return choices
    return {
        **meta,
        "object": "chat.completion",
        "choices": [
            {
                "index": c.index,
                "message": {"role": "assistant", "content": c.text},
                "logprobs": chat_logprobs(state.tokenizer, c.logprobs) if req.logprobs else None,
                "finish_reason": c.finish_reason,
            }
            for c in choices
        ],
        "usage": usage(len(prompt), sum(c.completion_tokens for c in choices)).model_dump(),
    }


def _stream(
    state: ServerState,
    req: ChatCompletionRequest,
    gen: Generation,
    meta: dict[str, Any],
    prompt_len: int,
) -> AsyncIterator[str]:
    def choice(d: Delta) -> dict[str, Any]:
        finished = d.finish_reason is not None
        return {
            "index": d.index,
            "delta": {"content": d.text} if d.text or not finished else {},
            "logprobs": chat_logprobs(state.tokenizer, d.logprobs) if req.logprobs else None,
            "finish_reason": d.finish_reason,
        }

    # Every choice opens with the assistant role, as OpenAI's streams do.
    first = [
        {
            "index": i,
            "delta": {"role": "assistant", "content": ""},
            "logprobs": None,
            "finish_reason": None,
        }
        for i in range(req.n)
    ]
    base = {**meta, "object": "chat.completion.chunk"}
    return openai_sse(stream_deltas(gen), base, first, choice, req.stream_options, prompt_len)
