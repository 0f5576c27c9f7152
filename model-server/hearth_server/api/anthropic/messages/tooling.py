"""Anthropic's wire forms of tools, tool_choice, tool_use and tool_result blocks, to and
from the neutral ones."""

from __future__ import annotations

import json
import uuid
from typing import Any

from hearth_server.api.anthropic.messages.protocol import (
    MessagesRequest,
    TextBlock,
    ToolResultBlock,
    ToolUseBlock,
)
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


def anthropic_tools(raw: list[Any] | None) -> list[Tool]:
    """``tools``: ``[{name, description, input_schema}]`` (client tools only)."""
    tools = []
    for i, item in enumerate(raw or []):
        where = f"tools.{i}"
        if not isinstance(item, dict):
            raise ToolError(where, f"{where} must be an object")
        kind = item.get("type")
        if kind not in (None, "custom"):
            raise ToolError(
                f"{where}.type",
                f"{where}.type {kind!r} is a server tool, which this server does not run; "
                "define client tools with name, description and input_schema",
            )
        if "input_schema" not in item:
            raise ToolError(f"{where}.input_schema", f"{where}.input_schema is required")
        tools.append(
            Tool(
                name=check_name(item.get("name"), f"{where}.name"),
                description=check_description(item.get("description"), f"{where}.description"),
                parameters=check_parameters(item["input_schema"], f"{where}.input_schema"),
            )
        )
    return check_unique(tools, "tools")


_CHOICE_FORMS = "{'type': 'auto' | 'any' | 'none'} or {'type': 'tool', 'name': ...}"


def anthropic_tool_choice(raw: Any, tools: list[Tool]) -> ToolChoice:
    if raw is None:
        return ToolChoice("auto" if tools else "none")
    kind = raw.get("type") if isinstance(raw, dict) else None
    if kind not in ("auto", "any", "tool", "none"):
        raise ToolError("tool_choice", f"tool_choice must be {_CHOICE_FORMS}")
    assert isinstance(raw, dict)
    disable = raw.get("disable_parallel_tool_use", False)
    if not isinstance(disable, bool):
        raise ToolError(
            "tool_choice.disable_parallel_tool_use",
            "tool_choice.disable_parallel_tool_use must be a boolean",
        )
    if kind in ("any", "tool") and not tools:
        raise ToolError("tool_choice", f"tool_choice {kind!r} needs tools")
    if kind == "none":
        return ToolChoice("none")
    if kind == "auto":
        return ToolChoice("auto" if tools else "none", parallel=not disable)
    if kind == "any":
        return ToolChoice("required", parallel=not disable)
    name = raw.get("name")
    if name not in {t.name for t in tools}:
        raise ToolError(
            "tool_choice.name", f"tool_choice names the tool {name!r}, which is not in tools"
        )
    return ToolChoice("required", name=name, parallel=False)


def _result_text(block: ToolResultBlock) -> str:
    return f"Error: {block.text()}" if block.is_error else block.text()


def anthropic_turns(req: MessagesRequest) -> list[Turn]:
    """The conversation as neutral turns: tool_use blocks become the assistant turn's
    calls, each tool_result block a tool turn (before the user's text, as sent)."""
    system = req.system_text()
    turns = [Turn("system", system)] if system else []
    for i, message in enumerate(req.messages):
        if isinstance(message.content, str):
            turns.append(Turn(message.role, message.content))
            continue
        if message.role == "assistant":
            calls = [
                ToolCall(b.name, json.dumps(b.input, ensure_ascii=False), b.id)
                for b in message.content
                if isinstance(b, ToolUseBlock)
            ]
            turns.append(Turn("assistant", message.text(), calls))
            continue
        text: list[str] = []
        for j, block in enumerate(message.content):
            if isinstance(block, ToolUseBlock):
                raise ToolError(
                    f"messages.{i}.content.{j}", "tool_use blocks belong in assistant messages"
                )
            if isinstance(block, TextBlock):
                text.append(block.text)
                continue
            where = f"messages.{i}.content.{j}.tool_use_id"
            turns.append(
                Turn("tool", _result_text(block), tool_call_id=block.tool_use_id, where=where)
            )
        if text:
            turns.append(Turn("user", "".join(text)))
    return turns


def new_tool_use_id() -> str:
    return f"toolu_{uuid.uuid4().hex[:24]}"


def tool_use_block(call: ToolCall) -> dict[str, Any]:
    return {
        "type": "tool_use",
        "id": call.id or new_tool_use_id(),
        "name": call.name,
        "input": call.arguments_object(),
    }
