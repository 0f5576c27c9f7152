"""Dialect-neutral tool definitions, tool choices and calls, and their validation."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from hearth_server.engine.structured import MAX_SCHEMA_DEPTH as MAX_CONSTRAINT_DEPTH
from hearth_server.engine.structured import nesting

# OpenAI's and Anthropic's rule for function names.
NAME_PATTERN = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
EMPTY_PARAMETERS: Mapping[str, Any] = {"type": "object", "properties": {}}
# Deeper parameter schemas are refused before anything walks them recursively (the
# constraint library's own limit is the same).
MAX_SCHEMA_DEPTH = MAX_CONSTRAINT_DEPTH


class ToolError(ValueError):
    """Invalid tool input; ``param`` names the offending field (dotted path)."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: Mapping[str, Any]  # a JSON Schema of type object


@dataclass(frozen=True)
class ToolChoice:
    """``none``: no calls; ``auto``: the model decides; ``required``: at least one call
    (exactly ``name`` when set), decoded under a constraint."""

    mode: Literal["none", "auto", "required"] = "auto"
    name: str | None = None
    parallel: bool = True


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: str  # a JSON object, as text
    id: str | None = None

    def arguments_object(self) -> Any:
        """The arguments parsed (the text itself when it is not JSON)."""
        try:
            return json.loads(self.arguments)
        except ValueError:
            return self.arguments


@dataclass
class Turn:
    """One message of a conversation, whatever the dialect: ``role`` is system, user,
    assistant or tool (a tool result, answering ``tool_call_id``)."""

    role: Literal["system", "user", "assistant", "tool"]
    content: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str | None = None
    name: str | None = None  # for a tool result: the function it answers
    where: str = ""  # the request field it came from, for error messages


def check_name(value: Any, param: str) -> str:
    if not isinstance(value, str) or not NAME_PATTERN.match(value):
        raise ToolError(param, f"{param} must match ^[a-zA-Z0-9_-]{{1,64}}$ (got {value!r:.70})")
    return value


def check_parameters(value: Any, param: str) -> Mapping[str, Any]:
    """A function's parameters: a JSON Schema object describing an object (missing means
    no parameters)."""
    if value is None:
        return EMPTY_PARAMETERS
    if not isinstance(value, dict):
        raise ToolError(param, f"{param} must be a JSON Schema object")
    if nesting(value) > MAX_SCHEMA_DEPTH:
        raise ToolError(param, f"{param} is nested deeper than {MAX_SCHEMA_DEPTH} levels")
    if value.get("type", "object") != "object":
        raise ToolError(param, f'{param} must be a schema of "type": "object"')
    props = value.get("properties", {})
    if not isinstance(props, dict):
        raise ToolError(f"{param}.properties", f"{param}.properties must be an object")
    return value


def check_description(value: Any, param: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ToolError(param, f"{param} must be a string")
    return value


def check_unique(tools: list[Tool], param: str) -> list[Tool]:
    seen: set[str] = set()
    for i, tool in enumerate(tools):
        if tool.name in seen:
            raise ToolError(f"{param}.{i}.name", f"two tools are named {tool.name!r}")
        seen.add(tool.name)
    return tools


def check_history(turns: list[Turn]) -> None:
    """Every tool result answers a call made earlier in the conversation (and learns the
    name of the function it answers)."""
    called: dict[str, str] = {}
    for turn in turns:
        for call in turn.tool_calls:
            if call.id is not None:
                called[call.id] = call.name
        if turn.role != "tool":
            continue
        if turn.tool_call_id not in called:
            raise ToolError(
                turn.where,
                f"{turn.where} answers tool call {turn.tool_call_id!r}, which no earlier "
                "assistant message made",
            )
        if turn.name is None:
            turn.name = called[turn.tool_call_id]
