"""Logic of POST /v1/messages: returns values, never raises HTTP errors."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request

from hearth_server.api.anthropic.messages.protocol import MessagesRequest
from hearth_server.api.errors import ErrorResponse, anthropic_body, bad_request
from hearth_server.api.generation import (
    Generation,
    check_params,
    collect_choices,
    fit_max_tokens,
    resolve_target,
    stream_deltas,
)
from hearth_server.api.openai.chat.serving import chat_prompt
from hearth_server.api.state import ServerState
from hearth_server.engine.params import SamplingParams


def _stop_reason(finish_reason: str | None, matched: str | int | None) -> tuple[str, str | None]:
    if finish_reason == "length":
        return "max_tokens", None
    if isinstance(matched, str):
        return "stop_sequence", matched
    return "end_turn", None


def _event(kind: str, body: dict[str, Any]) -> str:
    return f"event: {kind}\ndata: {json.dumps({'type': kind, **body}, ensure_ascii=False)}\n\n"


async def create_message(
    state: ServerState, req: MessagesRequest, raw: Request | None
) -> ErrorResponse | dict[str, Any] | AsyncIterator[str]:
    if req.tools:
        return bad_request("tools are not supported by this server", "tools")
    target = resolve_target(state, req.model)
    if isinstance(target, ErrorResponse):
        return target
    prompt = await chat_prompt(state, req.conversation())
    if isinstance(prompt, ErrorResponse):
        return prompt
    budget = fit_max_tokens(state, len(prompt), req.max_tokens, "truncate", "messages")
    if isinstance(budget, ErrorResponse):
        return budget
    params = SamplingParams(
        max_tokens=budget,
        temperature=1.0 if req.temperature is None else req.temperature,
        top_p=1.0 if req.top_p is None else req.top_p,
        top_k=req.top_k or 0,
        stop=list(req.stop_sequences or []),
    )
    err = check_params(state, params)
    if err is not None:
        return err
    assert state.engine is not None
    gen = Generation(state.engine, [(prompt, params)], target)
    err = gen.start()
    if err is not None:
        return err
    msg_id = f"msg_{uuid.uuid4().hex}"
    if req.stream:
        return _stream(gen, msg_id, req.model, len(prompt))
    choices = await collect_choices(gen, raw)
    if isinstance(choices, ErrorResponse):
        return choices
    only = choices[0]
    reason, seq = _stop_reason(only.finish_reason, only.matched_stop)
    return {
        "id": msg_id,
        "type": "message",
        "role": "assistant",
        "model": req.model,
        "content": [{"type": "text", "text": only.text}],
        "stop_reason": reason,
        "stop_sequence": seq,
        "usage": {"input_tokens": len(prompt), "output_tokens": only.completion_tokens},
    }


async def _stream(gen: Generation, msg_id: str, model: str, prompt_len: int) -> AsyncIterator[str]:
    yield _event(
        "message_start",
        {
            "message": {
                "id": msg_id,
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": prompt_len, "output_tokens": 0},
            }
        },
    )
    yield _event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}})
    reason: tuple[str, str | None] = ("end_turn", None)
    output_tokens = 0
    async for delta in stream_deltas(gen):
        if isinstance(delta, ErrorResponse):
            yield _event("error", {"error": anthropic_body(delta)["error"]})
            return
        output_tokens = delta.completion_tokens
        if delta.text:
            yield _event(
                "content_block_delta",
                {"index": 0, "delta": {"type": "text_delta", "text": delta.text}},
            )
        if delta.finish_reason is not None:
            reason = _stop_reason(delta.finish_reason, delta.matched_stop)
    yield _event("content_block_stop", {"index": 0})
    yield _event(
        "message_delta",
        {
            "delta": {"stop_reason": reason[0], "stop_sequence": reason[1]},
            "usage": {"output_tokens": output_tokens},
        },
    )
    yield _event("message_stop", {})
