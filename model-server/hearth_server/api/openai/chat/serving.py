"""Logic of POST /v1/chat/completions: returns values, never raises HTTP errors."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
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
from hearth_server.api.openai.chat.stream import chat_logprobs, opening_choice, tool_sse
from hearth_server.api.openai.chat.tooling import (
    openai_tool_choice,
    openai_tools,
    openai_turns,
    tool_call_json,
)
from hearth_server.api.openai.protocol import openai_sse, usage
from hearth_server.api.state import ServerState
from hearth_server.api.structured import structured_from_openai, warm_grammar
from hearth_server.api.tools.plan import ToolPlan, rename_param
from hearth_server.api.tools.prompt import chat_messages
from hearth_server.api.tools.spec import Tool, ToolChoice, ToolError, Turn, check_history
from hearth_server.engine.params import ParamError
from hearth_server.engine.structured import StructuredSpec


def apply_chat_template(
    tokenizer: Any,
    turns: list[Turn],
    tools: list[Tool] | None = None,
    choice: ToolChoice | None = None,
) -> list[int]:
    template = getattr(tokenizer, "chat_template", None)
    if not template:
        raise ValueError("this model has no chat template; use /v1/completions")
    messages, schemas = chat_messages(
        str(template), turns, tools or [], choice or ToolChoice("none")
    )
    continue_final = messages[-1]["role"] == "assistant" and not turns[-1].tool_calls
    ids = tokenizer.apply_chat_template(
        messages,
        tools=schemas,
        add_generation_prompt=not continue_final,
        continue_final_message=continue_final,
        tokenize=True,
    )
    if isinstance(ids, dict):  # some tokenizers return a BatchEncoding
        ids = ids["input_ids"]
    return list(ids)


async def chat_prompt(state: ServerState, plan: ToolPlan) -> list[int] | ErrorResponse:
    """The conversation through the model's chat template, tokenised off the event loop.
    A template that refuses the conversation (e.g. roles that do not alternate) is a 400."""
    try:
        return await state.off_loop(
            apply_chat_template, state.tokenizer, plan.turns, plan.tools, plan.choice
        )
    except (ValueError, TemplateError) as exc:
        return bad_request(f"the chat template refused these messages: {exc}", "messages")


def _plan(req: ChatCompletionRequest) -> ToolPlan | ErrorResponse:
    try:
        tools = openai_tools(req.tools)
        choice = openai_tool_choice(req.tool_choice, tools, req.parallel_tool_calls)
        turns = openai_turns(req)
        check_history(turns)
        return ToolPlan(turns, tools, choice)
    except ToolError as exc:
        return bad_request(str(exc), exc.param)


def _constraint(
    req: ChatCompletionRequest, plan: ToolPlan
) -> StructuredSpec | ErrorResponse | None:
    """A forced tool call's constraint, or the one ``response_format`` asks for."""
    try:
        asked = structured_from_openai(req.response_format)
    except ParamError as exc:
        return bad_request(str(exc), exc.param)
    forced = plan.constraint()
    if forced is not None and asked is not None:
        return bad_request(
            "response_format cannot be combined with a forced tool call (tool_choice "
            "'required' or a named function)",
            "response_format",
        )
    return forced or asked


async def create_chat_completion(
    state: ServerState, req: ChatCompletionRequest, raw: Request | None
) -> ErrorResponse | dict[str, Any] | AsyncIterator[str]:
    problem = req.chat_unsupported()
    if problem is not None:
        return bad_request(problem[1], problem[0])
    plan = _plan(req)
    if isinstance(plan, ErrorResponse):
        return plan
    structured = _constraint(req, plan)
    if isinstance(structured, ErrorResponse):
        return structured
    target = resolve_target(state, req.model)
    if isinstance(target, ErrorResponse):
        return target
    err = check_fanout(state, req.n, "n", f"n={req.n} choices")
    if err is not None:
        return err
    prompt = await chat_prompt(state, plan)
    if isinstance(prompt, ErrorResponse):
        return prompt
    wanted = req.max_completion_tokens if req.max_completion_tokens is not None else req.max_tokens
    budget = fit_max_tokens(
        state, len(prompt), wanted, req.context_length_exceeded_behavior, "messages"
    )
    if isinstance(budget, ErrorResponse):
        return budget
    top = (req.top_logprobs or 0) if req.logprobs else None
    params = replace(req.to_sampling_params(budget, top), structured=structured)
    err = check_params(state, params)
    if err is not None:
        return err
    assert state.engine is not None
    await warm_grammar(state, structured)
    gen = Generation(state.engine, [(prompt, req.seeded(params, i)) for i in range(req.n)], target)
    err = gen.start()
    if plan.active:
        err = rename_param(err, "response_format", "tools")
    if err is not None:
        return err
    meta = {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "created": int(time.time()),
        "model": req.model or state.settings.model_name,
    }
    if req.stream:
        return _stream(state, req, gen, meta, len(prompt), plan)
    choices = await collect_choices(gen, raw)
    if isinstance(choices, ErrorResponse):
        return choices
    return {
        **meta,
        "object": "chat.completion",
        "choices": [
            {
                "index": c.index,
                **_message(plan, c.text, c.finish_reason),
                "logprobs": chat_logprobs(state.tokenizer, c.logprobs) if req.logprobs else None,
            }
            for c in choices
        ],
        "usage": usage(
            len(prompt), sum(c.completion_tokens for c in choices), gen.cached_tokens
        ).model_dump(),
    }


def _message(plan: ToolPlan, text: str, finish_reason: str) -> dict[str, Any]:
    """A finished choice's message and finish_reason, with the calls it made."""
    parsed = plan.parse(text)
    if not parsed.calls:
        return {"message": {"role": "assistant", "content": text}, "finish_reason": finish_reason}
    message = {
        "role": "assistant",
        "content": parsed.text or None,
        "tool_calls": [tool_call_json(c) for c in parsed.calls],
    }
    return {"message": message, "finish_reason": "tool_calls"}


def _stream(
    state: ServerState,
    req: ChatCompletionRequest,
    gen: Generation,
    meta: dict[str, Any],
    prompt_len: int,
    plan: ToolPlan,
) -> AsyncIterator[str]:
    base = {**meta, "object": "chat.completion.chunk"}
    if plan.active:
        return tool_sse(state.tokenizer, req, gen, base, prompt_len, plan)

    def choice(d: Delta) -> dict[str, Any]:
        finished = d.finish_reason is not None
        return {
            "index": d.index,
            "delta": {"content": d.text} if d.text or not finished else {},
            "logprobs": chat_logprobs(state.tokenizer, d.logprobs) if req.logprobs else None,
            "finish_reason": d.finish_reason,
        }

    first = [opening_choice(i) for i in range(req.n)]
    return openai_sse(
        stream_deltas(gen),
        base,
        first,
        choice,
        req.stream_options,
        prompt_len,
        cached=lambda: gen.cached_tokens,
    )
