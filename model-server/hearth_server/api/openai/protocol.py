"""Wire types shared by the OpenAI endpoints."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from hearth_server.api.errors import ErrorResponse
from hearth_server.api.generation import Delta
from hearth_server.api.validation import Text, stop_sequences
from hearth_server.engine.params import SEED_MAX, SEED_MIN, SamplingParams

log = logging.getLogger(__name__)


class OpenAIBaseModel(BaseModel):
    """Unknown fields are allowed, as OpenAI does, and logged. Known fields are strict like
    OpenAI's: no coercion (``"2"`` is not an integer, ``"yes"`` not a boolean), except
    integers where a number is expected; NaN and infinity are refused."""

    model_config = ConfigDict(extra="allow", strict=True, allow_inf_nan=False)

    @model_validator(mode="after")
    def _log_extra(self) -> OpenAIBaseModel:
        if self.model_extra:
            log.debug("%s: ignoring fields %s", type(self).__name__, sorted(self.model_extra))
        return self


class StreamOptions(OpenAIBaseModel):
    include_usage: bool = False
    continuous_usage_stats: bool = False


class PromptTokensDetails(BaseModel):
    cached_tokens: int = 0  # prompt tokens whose KV came from the prefix cache


class UsageInfo(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails = PromptTokensDetails()


# Fireworks extras this server does not implement: refused with a 400 naming the field
# rather than ignored, unless they carry their neutral value (null, false, best_of 1).
REFUSED_EXTRAS: dict[str, str] = {
    "mirostat_target": "mirostat sampling is not supported by this server",
    "mirostat_lr": "mirostat sampling is not supported by this server",
    "best_of": "best_of is not supported by this server; use n",
    "raw_output": "raw_output is not supported by this server",
    "return_token_ids": "return_token_ids is not supported by this server",
    "speculation": "speculative decoding hints are not supported by this server",
    "prediction": "predicted outputs are not supported by this server",
    "perf_metrics_in_response": "perf_metrics_in_response is not supported by this server",
    "prompt_truncate_len": "prompt_truncate_len is not supported by this server",
    "prompt_cache_max_len": "prompt_cache_max_len is not supported by this server",
    "safe_tokenization": "safe_tokenization is not supported by this server",
}


def _neutral(name: str, value: Any) -> bool:
    return value is None or value is False or (name == "best_of" and value == 1)


def _token_bias(value: Any) -> Any:
    """``logit_bias``: an object of token id (a decimal string, as JSON keys are) ->
    bias; the ids become integers. Ranges and the vocabulary are checked later."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise PydanticCustomError("logit_bias_type", "must be an object of token id -> bias")
    out: dict[int, Any] = {}
    for key, bias in value.items():
        try:
            token = int(key)
        except (TypeError, ValueError):
            raise PydanticCustomError(
                "logit_bias_key", "keys must be token ids (integers), got {key}", {"key": key}
            ) from None
        out[token] = bias
    return out


class SamplingFields(OpenAIBaseModel):
    """Sampling fields common to chat and completions (OpenAI plus vLLM/Fireworks extras)."""

    model: Text | None = None
    n: int = Field(1, ge=1, le=128)  # Fireworks' limit
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    repetition_penalty: float | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    seed: int | None = Field(None, ge=SEED_MIN, le=SEED_MAX)
    stop: Annotated[str | list[str] | None, BeforeValidator(stop_sequences)] = None
    stop_token_ids: list[int] | None = None
    ignore_eos: bool = False
    min_tokens: int = 0
    skip_special_tokens: bool = True
    stream: bool = False
    stream_options: StreamOptions | None = None
    logit_bias: Annotated[
        dict[int, Annotated[float, Field(ge=-100, le=100)]] | None,
        BeforeValidator(_token_bias),
    ] = None
    typical_p: float | None = None
    user: Text | None = None
    context_length_exceeded_behavior: Literal["truncate", "error"] = "truncate"

    @field_validator("seed")
    @classmethod
    def _derived_seeds_fit(cls, seed: int | None, info: ValidationInfo) -> int | None:
        """With n > 1, choice i samples with seed + i: those must fit in 64 bits too."""
        n = info.data.get("n", 1)
        if seed is not None and seed + n - 1 > SEED_MAX:
            raise PydanticCustomError(
                "seed_range",
                "with n={n} choices use seeds seed..seed+{last}, which must be at most "
                "2**63 - 1; lower seed",
                {"n": n, "last": n - 1},
            )
        return seed

    def unsupported(self) -> tuple[str, str] | None:
        """(param, message) for a feature this server does not implement."""
        for name, value in (self.model_extra or {}).items():
            if name in REFUSED_EXTRAS and not _neutral(name, value):
                return name, REFUSED_EXTRAS[name]
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
            logit_bias=dict(self.logit_bias or {}),
            typical_p=1.0 if self.typical_p is None else self.typical_p,
        )

    def seeded(self, params: SamplingParams, index: int) -> SamplingParams:
        """The params of choice ``index``: with n > 1 each choice gets its own seed."""
        if params.seed is None or index == 0:
            return params
        return replace(params, seed=params.seed + index)


def usage(prompt: int, completion: int, cached: int = 0) -> UsageInfo:
    return UsageInfo(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=cached),
    )


def dump(model: BaseModel | dict[str, Any]) -> str:
    """One SSE event."""
    import json

    body = model if isinstance(model, dict) else model.model_dump(exclude_none=False)
    return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"


async def openai_sse(
    deltas: AsyncIterator[Delta | ErrorResponse],
    base: dict[str, Any],
    first: list[dict[str, Any]],
    choice: Callable[[Delta], dict[str, Any]],
    options: StreamOptions | None,
    prompt_tokens: int,
    cached: Callable[[], int] = lambda: 0,
) -> AsyncIterator[str]:
    """The SSE body shared by chat and completions: ``first`` choices, one chunk per
    delta, an error event if the engine fails, the optional usage chunk, ``[DONE]``.
    ``cached``: the prefix-cache reuse, known once the request is admitted."""
    continuous = bool(options and options.continuous_usage_stats)
    completion = 0
    for c in first:
        yield dump({**base, "choices": [c]})
    async for delta in deltas:
        if isinstance(delta, ErrorResponse):
            yield dump(delta)
            break
        completion = delta.total_completion_tokens
        chunk: dict[str, Any] = {**base, "choices": [choice(delta)]}
        if continuous:
            chunk["usage"] = usage(prompt_tokens, completion, cached()).model_dump()
        yield dump(chunk)
    if options and options.include_usage:
        final = usage(prompt_tokens, completion, cached()).model_dump()
        yield dump({**base, "choices": [], "usage": final})
    yield "data: [DONE]\n\n"
