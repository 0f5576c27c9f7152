"""Conversations with tools into the model's prompt.

A chat template that uses a ``tools`` variable renders tools, calls and results itself
(transformers' message format). Otherwise the default applies: the functions are listed
as JSON in a system-prompt section that asks for ``<tool_call>`` blocks (Hermes style),
earlier calls are written back as such blocks in the assistant's turn, and tool results
go to the model as ``<tool_response>`` blocks in a user turn.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any

import jinja2
from jinja2 import meta

from hearth_server.api.tools.parse import CLOSE, OPEN
from hearth_server.api.tools.spec import Tool, ToolCall, ToolChoice, Turn

Message = dict[str, Any]


@lru_cache(maxsize=16)
def template_supports_tools(template: str) -> bool:
    """Whether a chat template reads the ``tools`` variable."""
    try:
        names = meta.find_undeclared_variables(jinja2.Environment().parse(template))
    except jinja2.TemplateError:  # extensions plain jinja does not know: look at the text
        return re.search(r"\btools\b", template) is not None
    return "tools" in names


def tool_schema(tool: Tool) -> Message:
    """A tool in OpenAI's (and transformers') format."""
    function = {"name": tool.name, "description": tool.description, "parameters": tool.parameters}
    return {"type": "function", "function": function}


def _call_json(call: ToolCall) -> str:
    body = {"name": call.name, "arguments": call.arguments_object()}
    return json.dumps(body, ensure_ascii=False)


def default_instructions(tools: list[Tool], choice: ToolChoice) -> str:
    """The system-prompt section that shows the functions to a model whose template
    does not know tools."""
    listed = "\n".join(
        json.dumps(
            {"name": t.name, "description": t.description, "parameters": t.parameters},
            ensure_ascii=False,
        )
        for t in tools
    )
    shape = '{"name": <function name>, "arguments": <arguments as a JSON object>}'
    lines = [
        "You can call functions. They are listed here as JSON, with a JSON Schema of "
        "their arguments:",
        f"<tools>\n{listed}\n</tools>",
    ]
    if choice.mode == "required":
        target = f"the function {choice.name}" if choice.name else "a function"
        many = " (a JSON list of calls to make several)" if choice.parallel else ""
        lines.append(f"Answer now by calling {target}, written as JSON{many}: {shape}")
    else:
        lines.append(
            f"To call a function, answer with one block per call:\n{OPEN}\n{shape}\n{CLOSE}\n"
            "The results come back in <tool_response> blocks."
        )
    return "\n\n".join(lines)


def _default_messages(turns: list[Turn], section: str | None) -> list[Message]:
    out: list[Message] = []
    for turn in turns:
        if turn.role == "assistant":
            blocks = [f"{OPEN}\n{_call_json(c)}\n{CLOSE}" for c in turn.tool_calls]
            content = "\n".join([turn.content] * bool(turn.content) + blocks)
            out.append({"role": "assistant", "content": content})
            continue
        content = turn.content
        if turn.role == "tool":
            result = json.dumps({"name": turn.name, "content": turn.content}, ensure_ascii=False)
            content = f"<tool_response>\n{result}\n</tool_response>"
        if turn.role in ("tool", "user") and out and out[-1].get("_results"):
            # Results and the user text after them make one user turn, so roles still
            # alternate for templates that require it.
            out[-1]["content"] += "\n" + content
            continue
        role = "user" if turn.role == "tool" else turn.role
        out.append({"role": role, "content": content, "_results": turn.role == "tool"})
    for message in out:
        message.pop("_results", None)
    if section is not None:
        if out and out[0]["role"] == "system":
            out[0]["content"] = f"{out[0]['content']}\n\n{section}"
        else:
            out.insert(0, {"role": "system", "content": section})
    return out


def _native_messages(turns: list[Turn]) -> list[Message]:
    out: list[Message] = []
    for turn in turns:
        message: Message = {"role": turn.role, "content": turn.content}
        if turn.tool_calls:
            message["tool_calls"] = [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments_object()},
                }
                for c in turn.tool_calls
            ]
        if turn.role == "tool":
            message.update(tool_call_id=turn.tool_call_id, name=turn.name)
        out.append(message)
    return out


def chat_messages(
    template: str, turns: list[Turn], tools: list[Tool], choice: ToolChoice
) -> tuple[list[Message], list[Message] | None]:
    """The messages and the ``tools`` argument for ``apply_chat_template``. Tools are
    left out of the prompt when the choice is ``none``."""
    shown = tools if choice.mode != "none" else []
    if template_supports_tools(template):
        return _native_messages(turns), [tool_schema(t) for t in shown] or None
    uses_tools = any(t.tool_calls or t.role == "tool" for t in turns)
    if not shown and not uses_tools:
        return [{"role": t.role, "content": t.content} for t in turns], None
    section = default_instructions(shown, choice) if shown else None
    return _default_messages(turns, section), None
