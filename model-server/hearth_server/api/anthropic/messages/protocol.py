"""Wire types of POST /v1/messages (Anthropic Messages API)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError

from hearth_server.api.validation import Text, anthropic_content, anthropic_system
from hearth_server.api.validation import stop_sequences as check_stops


class AnthropicModel(BaseModel):
    """Unknown fields are allowed; known ones are strict (no coercion of "2" to 2)."""

    model_config = ConfigDict(extra="allow", strict=True, allow_inf_nan=False)


class TextBlock(AnthropicModel):
    type: Literal["text"]
    text: Text


class ToolUseBlock(AnthropicModel):
    """A call an earlier assistant turn made."""

    type: Literal["tool_use"]
    id: Text
    name: Text
    input: dict[str, Any]


class ToolResultBlock(AnthropicModel):
    """The result of a call, sent back in a user turn."""

    type: Literal["tool_result"]
    tool_use_id: Text
    content: Annotated[str | list[TextBlock] | None, BeforeValidator(anthropic_system)] = None
    is_error: bool = False

    def text(self) -> str:
        if self.content is None or isinstance(self.content, str):
            return self.content or ""
        return "".join(b.text for b in self.content)


_TOOL_BLOCKS = ("tool_use", "tool_result")
Block = Annotated[TextBlock | ToolUseBlock | ToolResultBlock, Field(discriminator="type")]


def message_content(value: Any) -> Any:
    """A string or a list of text, tool_use and tool_result blocks; other blocks (images,
    documents, server tools) are refused with a message that says so."""
    if not isinstance(value, list):
        return anthropic_content(value)
    for i, block in enumerate(value):
        if isinstance(block, dict) and block.get("type") in _TOOL_BLOCKS:
            continue
        try:
            anthropic_content([block])
        except PydanticCustomError as exc:  # re-raised with this block's index
            context = {**(exc.context or {}), "index": i}
            raise PydanticCustomError(exc.type, exc.message_template, context) from None
    return value


class Message(AnthropicModel):
    role: Literal["user", "assistant"]
    content: Annotated[str | list[Block], BeforeValidator(message_content)]

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(b.text for b in self.content if isinstance(b, TextBlock))


class MessagesRequest(AnthropicModel):
    model: Text
    max_tokens: int = Field(ge=1)
    messages: list[Message] = Field(min_length=1)
    system: Annotated[str | list[TextBlock] | None, BeforeValidator(anthropic_system)] = None
    # (The validator's alias: annotations are resolved in the class namespace, where
    # ``stop_sequences`` is this field's default.)
    stop_sequences: Annotated[list[str] | None, BeforeValidator(check_stops)] = None
    stream: bool = False
    temperature: float | None = Field(None, ge=0.0, le=1.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    top_k: int | None = Field(None, ge=0)
    metadata: dict[str, Any] | None = None
    tools: list[Any] | None = None  # checked by tooling.anthropic_tools
    tool_choice: Any = None
    # Structured output: ``output_config.format`` (and the older beta ``output_format``).
    output_config: dict[str, Any] | None = None
    output_format: dict[str, Any] | None = None

    def system_text(self) -> str | None:
        if self.system is None or isinstance(self.system, str):
            return self.system or None
        return "".join(b.text for b in self.system) or None
