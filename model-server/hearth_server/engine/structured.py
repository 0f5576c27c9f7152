"""Constrained decoding: the engine-side description of a structured-output request.

``StructuredSpec`` is what the API layers (OpenAI ``response_format``, Anthropic
``output_format``, forced tool calls) hand to the engine. The engine turns it into a
per-row grammar matcher; rows without a spec never touch this module's machinery.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

StructuredKind = Literal["json_object", "json_schema", "grammar"]


@dataclass(frozen=True)
class StructuredSpec:
    """What a request's output must match.

    - ``json_object``: any JSON object;
    - ``json_schema``: a JSON value valid against ``schema``;
    - ``grammar``: text matching the GBNF grammar ``grammar`` (Fireworks' grammar mode).
    """

    kind: StructuredKind
    schema: Mapping[str, Any] | None = None  # json_schema
    grammar: str | None = None  # GBNF text for kind="grammar"
    strict: bool = True
