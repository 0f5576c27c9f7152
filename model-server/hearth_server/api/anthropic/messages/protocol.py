"""Wire types of POST /v1/messages (Anthropic Messages API)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class AnthropicModel(BaseModel):
    model_config = ConfigDict(extra="allow")


class TextBlock(AnthropicModel):
    type: Literal["text"]
    text: str


class Message(AnthropicModel):
    role: Literal["user", "assistant"]
    content: str | list[TextBlock]

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(b.text for b in self.content)


class MessagesRequest(AnthropicModel):
    model: str
    max_tokens: int = Field(ge=1)
    messages: list[Message] = Field(min_length=1)
    system: str | list[TextBlock] | None = None
    stop_sequences: list[str] | None = None
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
