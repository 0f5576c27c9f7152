"""Structured-output request fields of each dialect, turned into the engine's spec.

- OpenAI / Fireworks ``response_format``: ``{"type": "text"}``, ``{"type": "json_object"}``
  (Fireworks also takes a ``schema`` there), ``{"type": "json_schema", "json_schema":
  {"name", "schema", "strict"}}`` and Fireworks' ``{"type": "grammar", "grammar": GBNF}``.
- Anthropic ``output_format`` (also ``output_config.format``): ``{"type": "json_schema",
  "schema": {...}}``.

Pure functions: malformed input and schema features the engine cannot enforce raise
ParamError naming the field, so the caller answers 400 in its own dialect. One thin
helper, ``warm_grammar``, compiles a spec for the engine off the event loop.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from hearth_server.api.state import ServerState
from hearth_server.engine.params import ParamError
from hearth_server.engine.structured import GrammarError, StructuredSpec, validate_spec

OPENAI_TYPES = ("text", "json_object", "json_schema", "grammar")


def structured_from_openai(
    response_format: Mapping[str, Any] | None, field: str = "response_format"
) -> StructuredSpec | None:
    """The spec for an OpenAI-dialect ``response_format``; None for free text."""
    if response_format is None:
        return None
    if not isinstance(response_format, Mapping):
        raise ParamError(field, f"{field} must be an object with a 'type'")
    kind = response_format.get("type")
    if kind not in OPENAI_TYPES:
        raise ParamError(field, f"{field}.type must be one of {', '.join(OPENAI_TYPES)}")
    if kind == "text":
        return None
    if kind == "grammar":
        grammar = response_format.get("grammar")
        if not isinstance(grammar, str) or not grammar.strip():
            raise ParamError(field, f"{field}.grammar must be a non-empty GBNF grammar string")
        return _checked(StructuredSpec("grammar", grammar=grammar), field, f"{field}.grammar")
    if kind == "json_object":
        schema = response_format.get("schema")  # Fireworks' JSON mode with a schema
        if schema is None:
            return _checked(StructuredSpec("json_object"), field, field)
        return _schema_spec(schema, None, field, f"{field}.schema")
    return _json_schema(response_format, field)


def _json_schema(response_format: Mapping[str, Any], field: str) -> StructuredSpec:
    """``{"type": "json_schema", "json_schema": {...}}``, or Fireworks' flat form with
    ``schema`` (and ``strict``) beside ``type``."""
    body = response_format.get("json_schema")
    where = f"{field}.json_schema"
    if body is None and "schema" in response_format:
        body, where = response_format, field
    if not isinstance(body, Mapping):
        raise ParamError(field, f"{where} must be an object with a 'schema'")
    name = body.get("name")
    if name is not None and not isinstance(name, str):
        raise ParamError(field, f"{where}.name must be a string")
    if "schema" not in body:
        raise ParamError(field, f"{where}.schema is required")
    return _schema_spec(body["schema"], body.get("strict"), field, f"{where}.schema")


def structured_from_anthropic(
    output_format: Mapping[str, Any] | None, field: str = "output_format"
) -> StructuredSpec | None:
    """The spec for Anthropic's ``output_format``; None when absent."""
    if output_format is None:
        return None
    if not isinstance(output_format, Mapping) or output_format.get("type") != "json_schema":
        raise ParamError(field, f"{field}.type must be 'json_schema'")
    if "schema" not in output_format:
        raise ParamError(field, f"{field}.schema is required")
    return _schema_spec(output_format["schema"], None, field, f"{field}.schema")


def _schema_spec(schema: Any, strict: Any, field: str, where: str) -> StructuredSpec:
    if not isinstance(schema, Mapping):
        raise ParamError(field, f"{where} must be a JSON Schema object")
    if strict is not None and not isinstance(strict, bool):
        raise ParamError(field, f"{where.rsplit('.', 1)[0]}.strict must be a boolean")
    spec = StructuredSpec("json_schema", schema=schema, strict=True if strict is None else strict)
    return _checked(spec, field, where)


def _checked(spec: StructuredSpec, field: str, where: str) -> StructuredSpec:
    try:
        validate_spec(spec)
    except GrammarError as exc:
        raise ParamError(field, f"{where}: {exc}") from None
    return spec


async def warm_grammar(state: ServerState, spec: StructuredSpec | None) -> None:
    """Compile ``spec`` for the engine's tokenizer on a worker thread, so that
    ``Engine.check`` (run by ``Generation.start`` on the event loop) finds it cached: a
    large grammar never stalls the loop. A spec that fails is reported by that check."""
    if spec is None or state.engine is None:
        return
    with contextlib.suppress(GrammarError):
        await state.off_loop(state.engine.grammars.compile, spec)
