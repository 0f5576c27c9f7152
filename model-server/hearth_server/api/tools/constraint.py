"""The JSON Schema that forces a tool call (``tool_choice`` required / any / named).

The output is one call object ``{"name": ..., "arguments": ...}`` (or, when parallel
calls are allowed, a non-empty JSON list of them) whose ``arguments`` match the chosen
function's parameters: one ``anyOf`` branch per function. ``$defs`` of the functions are
hoisted to the root under a per-function prefix, with their ``$ref``s rewritten, since
the parameters no longer sit at the root of the schema.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hearth_server.api.tools.spec import Tool, ToolChoice, ToolError
from hearth_server.engine.structured import GrammarError, StructuredSpec, validate_spec

_DEF_KEYS = ("$defs", "definitions")


def _rewrite_refs(node: Any, prefix: str) -> Any:
    if isinstance(node, list):
        return [_rewrite_refs(v, prefix) for v in node]
    if not isinstance(node, Mapping):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "$ref" and isinstance(value, str):
            out[key] = _local_ref(value, prefix)
        else:
            out[key] = _rewrite_refs(value, prefix)
    return out


def _local_ref(ref: str, prefix: str) -> str:
    if ref == "#":
        return f"#/$defs/{prefix}root"
    for key in _DEF_KEYS:
        head = f"#/{key}/"
        if ref.startswith(head):
            return f"#/$defs/{prefix}{ref[len(head) :]}"
    return ref


def _arguments_schema(tool: Tool, defs: dict[str, Any]) -> dict[str, Any]:
    prefix = f"{tool.name}."
    params: dict[str, Any] = _rewrite_refs(tool.parameters, prefix)
    for key in _DEF_KEYS:
        for name, sub in (params.pop(key, None) or {}).items():
            defs[f"{prefix}{name}"] = sub
    if _mentions_root(tool.parameters):
        defs[f"{prefix}root"] = params
    return params


def _mentions_root(node: Any) -> bool:
    if isinstance(node, list):
        return any(_mentions_root(v) for v in node)
    if isinstance(node, Mapping):
        return node.get("$ref") == "#" or any(_mentions_root(v) for v in node.values())
    return False


def forced_call_schema(tools: list[Tool], choice: ToolChoice) -> dict[str, Any]:
    chosen = [t for t in tools if choice.name in (None, t.name)]
    defs: dict[str, Any] = {}
    branches = [
        {
            "type": "object",
            "properties": {
                "name": {"type": "string", "enum": [t.name]},
                "arguments": _arguments_schema(t, defs),
            },
            "required": ["name", "arguments"],
            "additionalProperties": False,
        }
        for t in chosen
    ]
    call = branches[0] if len(branches) == 1 else {"anyOf": branches}
    schema = {"type": "array", "items": call, "minItems": 1} if choice.parallel else call
    if defs:
        schema = {**schema, "$defs": defs}
    return schema


def forced_call_spec(tools: list[Tool], choice: ToolChoice) -> StructuredSpec | None:
    """The constraint for ``choice``; None when the model is free (auto, none). A
    parameters schema the constraint library cannot enforce is a ToolError."""
    if choice.mode != "required":
        return None
    spec = StructuredSpec(kind="json_schema", schema=forced_call_schema(tools, choice))
    try:
        validate_spec(spec)
    except GrammarError as exc:
        raise ToolError(
            "tools", f"tools: a function's parameters cannot be enforced: {exc}"
        ) from None
    return spec
