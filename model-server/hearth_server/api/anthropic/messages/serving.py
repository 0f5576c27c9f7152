"""Logic of POST /v1/messages: returns values, never raises HTTP errors."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request

from hearth_server.api.anthropic.messages.protocol import MessagesRequest
from hearth_server.api.errors import ErrorResponse, bad_request
from hearth_server.api.generation import (
    Generation,
    check_params,
    engine_error,
    fit_max_tokens,
    resolve_target,
)
from hearth_server.api.openai.chat.serving import apply_chat_template
from hearth_server.api.state import ServerState
from hearth_server.engine.params import SamplingParams, StepOutput


def _stop_reason(out: StepOutput) -> tuple[str, str | None]:
    if out.finish_reason == "length":
        return "max_tokens", None
    if isinstance(out.matched_stop, str):
        return "stop_sequence", out.matched_stop
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
    try:
        prompt = apply_chat_template(state.tokenizer, req.conversation())
    except ValueError as exc:
        return bad_request(str(exc), "messages")
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
    err = check_params(params)
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
    steps = (await gen.collect(raw))[0]
    failed = next((e for e in map(engine_error, steps) if e is not None), None)
    if failed is not None:
        return failed
    reason, seq = _stop_reason(steps[-1])
    return {
        "id": msg_id,
        "type": "message",
        "role": "assistant",
        "model": req.model,
        "content": [{"type": "text", "text": "".join(s.text for s in steps)}],
        "stop_reason": reason,
        "stop_sequence": seq,
        "usage": {"input_tokens": len(prompt), "output_tokens": steps[-1].completion_tokens},
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
    last: StepOutput | None = None
    async for _, out in gen.stream():
        failed = engine_error(out)
        if failed is not None:
            yield _event("error", {"error": {"type": "api_error", "message": failed.error.message}})
            return
        last = out
        if out.text:
            yield _event(
                "content_block_delta",
                {"index": 0, "delta": {"type": "text_delta", "text": out.text}},
            )
    yield _event("content_block_stop", {"index": 0})
    reason, seq = _stop_reason(last) if last else ("end_turn", None)
    yield _event(
        "message_delta",
        {
            "delta": {"stop_reason": reason, "stop_sequence": seq},
            "usage": {"output_tokens": last.completion_tokens if last else 0},
        },
    )
    yield _event("message_stop", {})
