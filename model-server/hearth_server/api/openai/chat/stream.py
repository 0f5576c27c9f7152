"""Chat completion chunks: logprobs, and streams whose output is parsed for tool calls."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from hearth_server.api.errors import ErrorResponse
from hearth_server.api.generation import Generation, stream_deltas
from hearth_server.api.openai.chat.protocol import ChatCompletionRequest
from hearth_server.api.openai.chat.tooling import tool_call_deltas
from hearth_server.api.openai.protocol import dump, usage
from hearth_server.api.tools.plan import PlanStream, ToolPlan
from hearth_server.engine.params import TokenLogprob


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


def opening_choice(index: int, content: str | None = "") -> dict[str, Any]:
    """Every choice opens with the assistant role, as OpenAI's streams do (with null
    content when the answer is a forced call, as OpenAI's are)."""
    return {
        "index": index,
        "delta": {"role": "assistant", "content": content},
        "logprobs": None,
        "finish_reason": None,
    }


class _ChoiceStream:
    """One choice's output turned into chunk deltas: text as content, calls as
    tool_calls deltas. Logprobs of text held back by the parser ride on the next delta."""

    def __init__(self, plan: ToolPlan) -> None:
        self.parser: PlanStream = plan.stream_parser()
        self.calls = 0
        self.pending: list[TokenLogprob] = []

    def deltas(self, text: str, finished: bool) -> list[dict[str, Any]]:
        events = self.parser.feed(text) + (self.parser.finish() if finished else [])
        out: list[dict[str, Any]] = []
        for event in events:
            if isinstance(event, str):
                out.append({"content": event})
            else:
                out.extend(tool_call_deltas(self.calls, event))
                self.calls += 1
        return out


async def tool_sse(
    tokenizer: Any,
    req: ChatCompletionRequest,
    gen: Generation,
    base: dict[str, Any],
    prompt_tokens: int,
    plan: ToolPlan,
) -> AsyncIterator[str]:
    """The SSE body of a chat stream whose output may hold tool calls. Same framing as
    ``openai_sse`` (opening chunks, usage options, error event, ``[DONE]``)."""
    options = req.stream_options
    continuous = bool(options and options.continuous_usage_stats)
    streams = [_ChoiceStream(plan) for _ in range(req.n)]
    completion = 0

    def chunk(index: int, delta: dict[str, Any], finish: str | None, lps: Any) -> str:
        choice = {"index": index, "delta": delta, "logprobs": lps, "finish_reason": finish}
        body: dict[str, Any] = {**base, "choices": [choice]}
        if continuous:
            body["usage"] = usage(prompt_tokens, completion, gen.cached_tokens).model_dump()
        return dump(body)

    for i in range(req.n):
        content = None if plan.constraint() is not None else ""
        yield dump({**base, "choices": [opening_choice(i, content)]})
    async for d in stream_deltas(gen):
        if isinstance(d, ErrorResponse):
            yield dump(d)
            break
        completion = d.total_completion_tokens
        state = streams[d.index]
        state.pending.extend(d.logprobs)
        finished = d.finish_reason is not None
        deltas = state.deltas(d.text, finished)
        reason = None
        if finished:
            reason = "tool_calls" if state.calls else d.finish_reason
            deltas.append({})
        for n, delta in enumerate(deltas):
            lps = None
            if req.logprobs and (state.pending or n == len(deltas) - 1):
                lps = chat_logprobs(tokenizer, state.pending)
                state.pending = []
            yield chunk(d.index, delta, reason if n == len(deltas) - 1 else None, lps)
    if options and options.include_usage:
        final = usage(prompt_tokens, completion, gen.cached_tokens).model_dump()
        yield dump({**base, "choices": [], "usage": final})
    yield "data: [DONE]\n\n"
