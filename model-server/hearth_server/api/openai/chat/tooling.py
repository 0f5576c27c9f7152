"""OpenAI's wire forms of tools, tool_choice and tool calls, to and from the neutral ones."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from hearth_server.api.tools.spec import (
    Tool,
    ToolCall,
    ToolChoice,
    ToolError,
    Turn,
    check_description,
    check_name,
    check_parameters,
    check_unique,
)

if TYPE_CHECKING:
    from hearth_server.api.openai.chat.protocol import ChatCompletionRequest, ChatMessage


def openai_tools(raw: list[Any] | None) -> list[Tool]:
    """``tools``: ``[{"type": "function", "function": {name, description, parameters}}]``."""
    tools = []
    for i, item in enumerate(raw or []):
        where = f"tools.{i}"
        if not isinstance(item, dict):
            raise ToolError(where, f"{where} must be an object")
        if item.get("type") != "function":
            raise ToolError(f"{where}.type", f"{where}.type must be 'function'")
        fn = item.get("function")
        if not isinstance(fn, dict):
            raise ToolError(f"{where}.function", f"{where}.function must be an object")
        tools.append(
            Tool(
                name=check_name(fn.get("name"), f"{where}.function.name"),
                description=check_description(
                    fn.get("description"), f"{where}.function.description"
                ),
                parameters=check_parameters(fn.get("parameters"), f"{where}.function.parameters"),
            )
        )
    return check_unique(tools, "tools")


def openai_tool_choice(raw: Any, tools: list[Tool], parallel: bool) -> ToolChoice:
    """``tool_choice``: none, auto, required or ``{"type": "function", "function":
    {"name": ...}}``; without tools only none (or nothing) is allowed."""
    if raw is None:
        return ToolChoice("auto" if tools else "none", parallel=parallel)
    if raw in ("none", "auto", "required"):
        if raw != "none" and not tools:
            raise ToolError("tool_choice", f"tool_choice {raw!r} needs tools")
        return ToolChoice(raw, parallel=parallel)
    fn = raw.get("function") if isinstance(raw, dict) else None
    if not isinstance(raw, dict) or raw.get("type") != "function" or not isinstance(fn, dict):
        raise ToolError(
            "tool_choice",
            "tool_choice must be 'none', 'auto', 'required' or "
            '{"type": "function", "function": {"name": ...}}',
        )
    name = fn.get("name")
    if name not in {t.name for t in tools}:
        raise ToolError(
            "tool_choice.function.name",
            f"tool_choice names the function {name!r}, which is not in tools",
        )
    return ToolChoice("required", name=name, parallel=False)


def _turn(i: int, m: ChatMessage) -> Turn:
    calls = [
        ToolCall(name=c.function.name, arguments=c.function.arguments, id=c.id)
        for c in m.tool_calls or []
    ]
    role = "system" if m.role == "developer" else m.role
    return Turn(role, m.text(), calls, m.tool_call_id, where=f"messages.{i}.tool_call_id")


def openai_turns(req: ChatCompletionRequest) -> list[Turn]:
    return [_turn(i, m) for i, m in enumerate(req.messages)]


def new_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


def tool_call_json(call: ToolCall) -> dict[str, Any]:
    """A call in a non-streaming response (``message.tool_calls``)."""
    return {
        "id": call.id or new_call_id(),
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments},
    }


def tool_call_deltas(index: int, call: ToolCall) -> list[dict[str, Any]]:
    """A call as stream deltas, OpenAI's way: the first carries the id and the name,
    the next the arguments."""
    return [
        {
            "tool_calls": [
                {
                    "index": index,
                    "id": call.id or new_call_id(),
                    "type": "function",
                    "function": {"name": call.name, "arguments": ""},
                }
            ]
        },
        {"tool_calls": [{"index": index, "function": {"arguments": call.arguments}}]},
    ]
