"""Wire types of POST /v1/messages (Anthropic Messages API)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from hearth_server.api.validation import Text, anthropic_content, anthropic_system
from hearth_server.api.validation import stop_sequences as check_stops


class AnthropicModel(BaseModel):
    """Unknown fields are allowed; known ones are strict (no coercion of "2" to 2)."""

    model_config = ConfigDict(extra="allow", strict=True, allow_inf_nan=False)


class TextBlock(AnthropicModel):
    type: Literal["text"]
    text: Text


class Message(AnthropicModel):
    role: Literal["user", "assistant"]
    # Image, document and tool blocks are refused with a message that says so.
    content: Annotated[str | list[TextBlock], BeforeValidator(anthropic_content)]

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(b.text for b in self.content)


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
    tools: list[dict[str, Any]] | None = None

    def conversation(self) -> list[dict[str, str]]:
        conv = []
        if self.system:
            text = (
                self.system
                if isinstance(self.system, str)
                else "".join(b.text for b in self.system)
            )
            conv.append({"role": "system", "content": text})
        conv.extend({"role": m.role, "content": m.text()} for m in self.messages)
        return conv
