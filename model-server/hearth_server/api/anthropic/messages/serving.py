"""Logic of POST /v1/messages: returns values, never raises HTTP errors."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request

from hearth_server.api.anthropic.messages.protocol import MessagesRequest
from hearth_server.api.anthropic.messages.tooling import (
    anthropic_tool_choice,
    anthropic_tools,
    anthropic_turns,
    tool_use_block,
)
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
from hearth_server.api.structured import structured_from_anthropic, warm_grammar
from hearth_server.api.tools.plan import ToolPlan, rename_param
from hearth_server.api.tools.spec import ToolCall, ToolError, check_history
from hearth_server.engine.params import ParamError, SamplingParams
from hearth_server.engine.structured import StructuredSpec


def _stop_reason(finish_reason: str | None, matched: str | int | None) -> tuple[str, str | None]:
    if finish_reason == "length":
        return "max_tokens", None
    if isinstance(matched, str):
        return "stop_sequence", matched
    return "end_turn", None


def _event(kind: str, body: dict[str, Any]) -> str:
    return f"event: {kind}\ndata: {json.dumps({'type': kind, **body}, ensure_ascii=False)}\n\n"


def _plan(req: MessagesRequest) -> ToolPlan | ErrorResponse:
    try:
        tools = anthropic_tools(req.tools)
        choice = anthropic_tool_choice(req.tool_choice, tools)
        turns = anthropic_turns(req)
        check_history(turns)
        return ToolPlan(turns, tools, choice)
    except ToolError as exc:
        return bad_request(str(exc), exc.param)


def _constraint(req: MessagesRequest, plan: ToolPlan) -> StructuredSpec | ErrorResponse | None:
    """A forced tool call's constraint, or the one ``output_config.format`` (or the
    older ``output_format``) asks for."""
    fmt, param = (req.output_config or {}).get("format"), "output_config.format"
    if fmt is None:
        fmt, param = req.output_format, "output_format"
    try:
        asked = structured_from_anthropic(fmt, param)
    except ParamError as exc:
        return bad_request(str(exc), exc.param)
    forced = plan.constraint()
    if forced is not None and asked is not None:
        return bad_request(
            f"{param} cannot be combined with a forced tool call (tool_choice any or tool)",
            param,
        )
    return forced or asked


async def create_message(
    state: ServerState, req: MessagesRequest, raw: Request | None
) -> ErrorResponse | dict[str, Any] | AsyncIterator[str]:
    plan = _plan(req)
    if isinstance(plan, ErrorResponse):
        return plan
    structured = _constraint(req, plan)
    if isinstance(structured, ErrorResponse):
        return structured
    target = resolve_target(state, req.model)
    if isinstance(target, ErrorResponse):
        return target
    prompt = await chat_prompt(state, plan)
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
        structured=structured,
    )
    err = check_params(state, params)
    if err is not None:
        return err
    assert state.engine is not None
    await warm_grammar(state, structured)
    gen = Generation(state.engine, [(prompt, params)], target)
    err = gen.start()
    if plan.active:
        err = rename_param(err, "response_format", "tools")
    if err is not None:
        return err
    msg_id = f"msg_{uuid.uuid4().hex}"
    if req.stream:
        return _stream(gen, msg_id, req.model, len(prompt), plan)
    choices = await collect_choices(gen, raw)
    if isinstance(choices, ErrorResponse):
        return choices
    only = choices[0]
    parsed = plan.parse(only.text)
    reason, seq = _stop_reason(only.finish_reason, only.matched_stop)
    if parsed.calls:
        reason, seq = "tool_use", None
    content: list[dict[str, Any]] = [{"type": "text", "text": parsed.text}] if parsed.text else []
    content.extend(tool_use_block(c) for c in parsed.calls)
    return {
        "id": msg_id,
        "type": "message",
        "role": "assistant",
        "model": req.model,
        "content": content or [{"type": "text", "text": ""}],
        "stop_reason": reason,
        "stop_sequence": seq,
        "usage": _usage(len(prompt), only.completion_tokens, gen.cached_tokens),
    }


class ContentBlocks:
    """Content-block events: text opens a text block (closed when a call comes), each
    call is a whole tool_use block with its input in one input_json_delta."""

    def __init__(self) -> None:
        self.index = -1
        self.text_open = False
        self.calls = 0

    def text(self, text: str) -> list[str]:
        events = []
        if not self.text_open:
            self.index += 1
            self.text_open = True
            block = {"type": "text", "text": ""}
            events.append(
                _event("content_block_start", {"index": self.index, "content_block": block})
            )
        if text:
            delta = {"type": "text_delta", "text": text}
            events.append(_event("content_block_delta", {"index": self.index, "delta": delta}))
        return events

    def call(self, call: ToolCall) -> list[str]:
        events = self.close()
        self.index += 1
        self.calls += 1
        block = {**tool_use_block(call), "input": {}}
        delta = {"type": "input_json_delta", "partial_json": call.arguments}
        return [
            *events,
            _event("content_block_start", {"index": self.index, "content_block": block}),
            _event("content_block_delta", {"index": self.index, "delta": delta}),
            _event("content_block_stop", {"index": self.index}),
        ]

    def close(self) -> list[str]:
        if not self.text_open:
            return []
        self.text_open = False
        return [_event("content_block_stop", {"index": self.index})]


def _usage(prompt_len: int, output_tokens: int, cached: int) -> dict[str, int]:
    """Anthropic's usage: ``input_tokens`` excludes the prompt tokens read from the
    prefix cache, which are ``cache_read_input_tokens`` (nothing is ever billed as
    written to a cache)."""
    return {
        "input_tokens": prompt_len - cached,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
        "output_tokens": output_tokens,
    }


async def _stream(
    gen: Generation, msg_id: str, model: str, prompt_len: int, plan: ToolPlan
) -> AsyncIterator[str]:
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
    blocks = ContentBlocks()
    parser = plan.stream_parser()
    if not plan.active:  # plain text: the block opens at once, as before
        for event in blocks.text(""):
            yield event
    reason: tuple[str, str | None] = ("end_turn", None)
    output_tokens = 0
    async for delta in stream_deltas(gen):
        if isinstance(delta, ErrorResponse):
            yield _event("error", {"error": anthropic_body(delta)["error"]})
            return
        output_tokens = delta.completion_tokens
        finished = delta.finish_reason is not None
        for item in parser.feed(delta.text) + (parser.finish() if finished else []):
            for event in blocks.text(item) if isinstance(item, str) else blocks.call(item):
                yield event
        if finished:
            reason = _stop_reason(delta.finish_reason, delta.matched_stop)
    if blocks.index < 0:  # nothing at all: one empty text block
        for event in blocks.text(""):
            yield event
    for event in blocks.close():
        yield event
    if blocks.calls:
        reason = ("tool_use", None)
    yield _event(
        "message_delta",
        {
            "delta": {"stop_reason": reason[0], "stop_sequence": reason[1]},
            "usage": _usage(prompt_len, output_tokens, gen.cached_tokens),
        },
    )
    yield _event("message_stop", {})
