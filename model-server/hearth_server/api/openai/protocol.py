"""Wire types shared by the OpenAI endpoints."""

from __future__ import annotations

import logging
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hearth_server.engine.params import SamplingParams

log = logging.getLogger(__name__)


class OpenAIBaseModel(BaseModel):
    """Lenient like OpenAI (unknown fields allowed) but visible: ignored fields are logged."""

    model_config = ConfigDict(extra="allow")

    @model_validator(mode="after")
    def _log_extra(self) -> OpenAIBaseModel:
        if self.model_extra:
            log.debug("%s: ignoring fields %s", type(self).__name__, sorted(self.model_extra))
        return self


class StreamOptions(OpenAIBaseModel):
    include_usage: bool = False
    continuous_usage_stats: bool = False


class UsageInfo(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class SamplingFields(OpenAIBaseModel):
    """Sampling fields common to chat and completions (OpenAI plus vLLM/Fireworks extras)."""

    model: str | None = None
    n: int = Field(1, ge=1, le=16)
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    repetition_penalty: float | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    seed: int | None = None
    stop: str | list[str] | None = None
    stop_token_ids: list[int] | None = None
    ignore_eos: bool = False
    min_tokens: int = 0
    skip_special_tokens: bool = True
    stream: bool = False
    stream_options: StreamOptions | None = None
    logit_bias: dict[str, float] | None = None
    user: str | None = None
    context_length_exceeded_behavior: Literal["truncate", "error"] = "truncate"

    def unsupported(self) -> tuple[str, str] | None:
        """(param, message) for a feature this server does not implement."""
        if self.logit_bias:
            return "logit_bias", "logit_bias is not supported by this server"
        if self.stream_options is not None and not self.stream:
            return "stream_options", "stream_options is only allowed when stream is true"
        return None

    def to_sampling_params(self, max_tokens: int, logprobs: int | None) -> SamplingParams:
        stops = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        return SamplingParams(
            max_tokens=max_tokens,
            temperature=1.0 if self.temperature is None else self.temperature,
            top_p=1.0 if self.top_p is None else self.top_p,
            top_k=self.top_k or 0,
            min_p=self.min_p or 0.0,
            repetition_penalty=self.repetition_penalty or 1.0,
            presence_penalty=self.presence_penalty,
            frequency_penalty=self.frequency_penalty,
            seed=self.seed,
            stop=stops,
            stop_token_ids=list(self.stop_token_ids or []),
            ignore_eos=self.ignore_eos,
            min_tokens=self.min_tokens,
            logprobs=logprobs,
            skip_special_tokens=self.skip_special_tokens,
        )

    def seeded(self, params: SamplingParams, index: int) -> SamplingParams:
        """The params of choice ``index``: with n > 1 each choice gets its own seed."""
        if params.seed is None or index == 0:
            return params
        from dataclasses import replace

        return replace(params, seed=params.seed + index)


def usage(prompt: int, completion: int) -> UsageInfo:
    return UsageInfo(
        prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
    )


def dump(model: BaseModel | dict[str, Any]) -> str:
    """One SSE event."""
    import json

    body = model if isinstance(model, dict) else model.model_dump(exclude_none=False)
    return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"
