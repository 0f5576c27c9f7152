"""Field validators shared by the wire types of every dialect.

Union-typed fields (``content``, ``prompt``, ``stop``) are checked here, before pydantic
tries each member of the union, so that a bad value gets one error that says what is
accepted instead of one error per member ("... (and 3 more problems)").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError

# Content part / block types that carry non-text input, by what they carry.
NON_TEXT_INPUTS: Mapping[str, str] = {
    "image": "image",
    "image_url": "image",
    "input_image": "image",
    "audio": "audio",
    "input_audio": "audio",
    "audio_url": "audio",
    "video": "video",
    "video_url": "video",
    "file": "file",
    "input_file": "file",
    "document": "document",
}


def _quote(value: object, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_text(value: str, where: str = "text") -> str:
    """Refuse strings that cannot be encoded as UTF-8: JSON allows a lone surrogate
    escape ("\\ud800"), which no tokenizer can handle."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise PydanticCustomError(
            "invalid_unicode",
            "{where} contains a lone UTF-16 surrogate at position {position}; "
            "text must be valid Unicode",
            {"where": where, "position": exc.start},
        ) from None
    return value


def _text_before(value: Any) -> Any:
    return check_text(value) if isinstance(value, str) else value


# A string that is valid Unicode (every str field of a request uses it). Checked before
# pydantic's own str validation, whose message for this case names no cause.
Text = Annotated[str, BeforeValidator(_text_before)]


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def stop_sequences(value: Any) -> Any:
    """``stop``: a string or a list of strings."""
    if value is None:
        return value
    if isinstance(value, str):
        return check_text(value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        for i, v in enumerate(value):
            check_text(v, f"stop sequence {i}")
        return value
    raise PydanticCustomError("stop_type", "must be a string or a list of strings")


def text_or_token_ids(value: Any, field: str) -> bool:
    """Whether ``value`` is a string, a list of strings, a list of token ids or a list of
    token-id lists (the prompt forms of completions and embeddings); strings are checked
    as text, errors naming ``field``."""
    if isinstance(value, str):
        check_text(value, field)
        return True
    if not isinstance(value, list):
        return False
    if all(isinstance(v, str) for v in value):
        for i, v in enumerate(value):
            check_text(v, f"{field} {i}")
        return True
    return all(_is_int(v) for v in value) or all(
        isinstance(v, list) and all(_is_int(t) for t in v) for v in value
    )


def completion_prompt(value: Any) -> Any:
    """``prompt`` of /v1/completions: a string, a list of strings, a list of token ids or
    a list of token-id lists."""
    if text_or_token_ids(value, "prompt"):
        return value
    raise PydanticCustomError(
        "prompt_type",
        "must be a string, a list of strings, a list of token ids or a list of token-id lists",
    )


def _unsupported_part(kind: str, index: int, tools: frozenset[str]) -> PydanticCustomError:
    what = NON_TEXT_INPUTS.get(kind)
    if what is not None:
        return PydanticCustomError(
            "unsupported_input",
            "{what} input is not supported by this model (part {index} has type {kind}); "
            "send text only",
            {"what": what, "index": index, "kind": _quote(kind)},
        )
    if kind in tools:
        return PydanticCustomError(
            "unsupported_input",
            "tool use is not supported by this server (part {index} has type {kind})",
            {"index": index, "kind": _quote(kind)},
        )
    return PydanticCustomError(
        "unknown_part",
        "part {index} has the unsupported type {kind}; only 'text' parts are accepted",
        {"index": index, "kind": _quote(kind)},
    )


def _text_parts(value: Any, tools: frozenset[str], nullable: bool) -> Any:
    if (value is None and nullable) or isinstance(value, str):
        return value if value is None else check_text(value, "content")
    if not isinstance(value, list):
        raise PydanticCustomError("content_type", "must be a string or a list of content parts")
    for i, part in enumerate(value):
        kind = part.get("type") if isinstance(part, dict) else None
        if not isinstance(kind, str):
            raise PydanticCustomError(
                "content_part", "part {index} must be an object with a string 'type'", {"index": i}
            )
        if kind != "text":
            raise _unsupported_part(kind, i, tools)
        text = part.get("text")
        if not isinstance(text, str):
            raise PydanticCustomError(
                "content_part", "part {index} of type 'text' needs a string 'text'", {"index": i}
            )
        check_text(text, f"part {i}")
    return value


_OPENAI_TOOL_PARTS = frozenset({"tool_call", "function_call", "tool_result"})
_ANTHROPIC_TOOL_BLOCKS = frozenset(
    {"tool_use", "tool_result", "server_tool_use", "web_search_tool_result"}
)


def openai_content(value: Any) -> Any:
    """``messages[].content`` of OpenAI chat: a string, null or a list of text parts."""
    return _text_parts(value, _OPENAI_TOOL_PARTS, nullable=True)


def anthropic_content(value: Any) -> Any:
    """``messages[].content`` and ``system`` of Anthropic Messages: a string or a list of
    text blocks."""
    return _text_parts(value, _ANTHROPIC_TOOL_BLOCKS, nullable=False)


def anthropic_system(value: Any) -> Any:
    return _text_parts(value, _ANTHROPIC_TOOL_BLOCKS, nullable=True)
