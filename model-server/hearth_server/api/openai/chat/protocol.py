"""Wire types of POST /v1/chat/completions."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field

from hearth_server.api.openai.protocol import OpenAIBaseModel, SamplingFields
from hearth_server.api.validation import Text, openai_content


class TextPart(OpenAIBaseModel):
    type: Literal["text"]
    text: Text


class ChatMessage(OpenAIBaseModel):
    role: Literal["system", "developer", "user", "assistant"]
    # Image, audio and file parts are refused with a message that says so.
    content: Annotated[str | list[TextPart] | None, BeforeValidator(openai_content)] = None
    name: Text | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(p.text for p in self.content)
        return self.content or ""


class ChatCompletionRequest(SamplingFields):
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=20)
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None
    response_format: dict[str, Any] | None = None

    def chat_unsupported(self) -> tuple[str, str] | None:
        if self.tools:
            return "tools", "tool calling is not supported by this server"
        if self.response_format and self.response_format.get("type", "text") != "text":
            return "response_format", "only response_format type 'text' is supported"
        if self.max_tokens is not None and self.max_completion_tokens is not None:
            return "max_tokens", "set max_tokens or max_completion_tokens, not both"
        if self.top_logprobs is not None and not self.logprobs:
            return "top_logprobs", "top_logprobs requires logprobs=true"
        return self.unsupported()

    def conversation(self) -> list[dict[str, str]]:
        """Messages for the chat template ('developer' is OpenAI's newer 'system')."""
        return [
            {"role": "system" if m.role == "developer" else m.role, "content": m.text()}
            for m in self.messages
        ]
