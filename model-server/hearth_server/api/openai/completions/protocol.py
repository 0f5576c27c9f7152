"""Wire types of POST /v1/completions."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, Field

from hearth_server.api.openai.protocol import SamplingFields
from hearth_server.api.validation import Text, completion_prompt

Prompt = str | list[int] | list[str] | list[list[int]]


class CompletionRequest(SamplingFields):
    prompt: Annotated[Prompt, BeforeValidator(completion_prompt)]
    max_tokens: int | None = Field(16, ge=1)
    echo: bool = False
    echo_last: int | None = Field(None, ge=1)  # Fireworks: echo only the last N prompt tokens
    logprobs: int | None = Field(None, ge=0, le=20)
    suffix: Text | None = None
    # Structured output, as Fireworks accepts on completions too (api/structured.py).
    response_format: dict[str, Any] | None = None

    def completion_unsupported(self) -> tuple[str, str] | None:
        if self.suffix:
            return "suffix", "suffix is not supported by this server"
        if isinstance(self.prompt, list) and not self.prompt:
            return "prompt", "prompt must not be empty"
        return self.unsupported()

    @property
    def echoes(self) -> bool:
        return self.echo or self.echo_last is not None

    def echoed(self, ids: list[int]) -> list[int]:
        """The prompt tokens echoed back: all, the last ``echo_last``, or none."""
        if self.echo_last is not None:
            return ids[-self.echo_last :]
        return ids if self.echo else []

    def prompts(self) -> list[str | list[int]]:
        """The prompt as a list of texts or token-id lists (one per choice group)."""
        p = self.prompt
        if isinstance(p, str):
            return [p]
        if p and isinstance(p[0], int):
            return [p]  # type: ignore[list-item,unused-ignore]
        return list(p)  # type: ignore[arg-type]
