"""Wire types of POST /v1/embeddings (OpenAI's shape)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field
from pydantic_core import PydanticCustomError

from hearth_server.api.openai.protocol import OpenAIBaseModel
from hearth_server.api.validation import Text, text_or_token_ids

EmbeddingInput = str | list[str] | list[int] | list[list[int]]


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def embedding_input(value: Any) -> Any:
    """``input``: a string, a list of strings, a list of token ids or a list of token-id
    lists; never empty (OpenAI refuses empty input too)."""
    if value != [] and text_or_token_ids(value, "input"):
        return value
    raise PydanticCustomError(
        "input_type",
        "must be a string, a non-empty list of strings, a list of token ids or a list of "
        "token-id lists",
    )


class EmbeddingRequest(OpenAIBaseModel):
    input: Annotated[EmbeddingInput, BeforeValidator(embedding_input)]
    model: Text | None = None
    dimensions: int | None = Field(None, ge=1)
    encoding_format: Literal["float", "base64"] = "float"
    user: Text | None = None  # accepted, as OpenAI does; it changes nothing here

    def inputs(self) -> list[str | list[int]]:
        """One entry (a text or token ids) per vector to return."""
        value = self.input
        if isinstance(value, str):
            return [value]
        if value and _is_int(value[0]):
            return [value]  # type: ignore[list-item,unused-ignore]
        return list(value)  # type: ignore[arg-type]
