"""Wire types of POST /tokenize and POST /detokenize."""

from __future__ import annotations

from pydantic import Field, model_validator

from hearth_server.api.openai.chat.protocol import ChatMessage
from hearth_server.api.openai.protocol import OpenAIBaseModel
from hearth_server.api.validation import Text


class TokenizeRequest(OpenAIBaseModel):
    model: Text | None = None
    prompt: Text | None = None
    messages: list[ChatMessage] | None = Field(None, min_length=1)
    add_special_tokens: bool = True
    add_generation_prompt: bool = True

    @model_validator(mode="after")
    def _one_input(self) -> TokenizeRequest:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("give exactly one of prompt or messages")
        return self


class DetokenizeRequest(OpenAIBaseModel):
    model: Text | None = None
    tokens: list[int]
