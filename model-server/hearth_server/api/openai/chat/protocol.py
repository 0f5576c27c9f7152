"""Wire types of POST /v1/chat/completions."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, model_validator

from hearth_server.api.openai.protocol import OpenAIBaseModel, SamplingFields
from hearth_server.api.validation import Text, openai_content


class TextPart(OpenAIBaseModel):
    type: Literal["text"]
    text: Text


class FunctionCall(OpenAIBaseModel):
    name: Text
    arguments: Text  # JSON text, as the model wrote it


class ToolCallIn(OpenAIBaseModel):
    """A call an earlier assistant message made (``messages[].tool_calls``)."""

    id: Text
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(OpenAIBaseModel):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    # Image, audio and file parts are refused with a message that says so.
    content: Annotated[str | list[TextPart] | None, BeforeValidator(openai_content)] = None
    name: Text | None = None
    tool_calls: list[ToolCallIn] | None = None
    tool_call_id: Text | None = None  # role tool: the call this result answers

    @model_validator(mode="after")
    def _tool_fields(self) -> ChatMessage:
        if self.tool_calls and self.role != "assistant":
            raise ValueError("only assistant messages carry tool_calls")
        if (self.role == "tool") != (self.tool_call_id is not None):
            raise ValueError("tool messages, and only they, need a tool_call_id")
        return self

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
    tools: list[Any] | None = None  # checked by tooling.openai_tools
    tool_choice: Any = None
    parallel_tool_calls: bool = True
    response_format: dict[str, Any] | None = None

    def chat_unsupported(self) -> tuple[str, str] | None:
        if self.max_tokens is not None and self.max_completion_tokens is not None:
            return "max_tokens", "set max_tokens or max_completion_tokens, not both"
        if self.top_logprobs is not None and not self.logprobs:
            return "top_logprobs", "top_logprobs requires logprobs=true"
        return self.unsupported()
