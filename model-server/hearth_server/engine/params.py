"""Engine-level request types, independent of any HTTP dialect."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the spec's module loads torch; params stays importable without it
    from hearth_server.engine.structured import StructuredSpec

# Seeds are signed 64-bit integers, as in vLLM and torch.Generator.manual_seed.
SEED_MIN = -(2**63)
SEED_MAX = 2**63 - 1

# Positive temperatures below this are raised to it (vLLM's rule): dividing logits by a
# smaller number overflows float32 (1e-45 gives inf and NaN). 0.01 already makes the
# distribution nearly one-hot, so the result is close to what such a request asks for.
MIN_TEMPERATURE = 0.01


class ParamError(ValueError):
    """An invalid sampling value; ``param`` names the offending field."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return _is_int(value) or (isinstance(value, float) and math.isfinite(value))


@dataclass
class SamplingParams:
    max_tokens: int = 16
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0  # 0 or -1: off
    min_p: float = 0.0
    repetition_penalty: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    stop_token_ids: list[int] = field(default_factory=list)
    ignore_eos: bool = False
    min_tokens: int = 0
    logprobs: int | None = None  # number of top alternatives; None = no logprobs
    skip_special_tokens: bool = True
    structured: StructuredSpec | None = None  # constrained decoding; None = free text
    logit_bias: dict[int, float] = field(default_factory=dict)  # token id -> added to its logit
    typical_p: float = 1.0  # locally typical sampling (Fireworks extra); 1.0: off
    # Logprobs of the prompt's tokens with this many top alternatives; None = none.
    prompt_logprobs: int | None = None

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0 or self.top_k == 1

    @property
    def effective_temperature(self) -> float:
        """The divisor the sampler uses: temperatures in (0, MIN_TEMPERATURE) count as
        MIN_TEMPERATURE (0 means greedy and never divides)."""
        return max(self.temperature, MIN_TEMPERATURE)

    def validate(self) -> None:
        """Range checks shared by every dialect; raise ParamError naming the field."""
        self._check_types()
        checks: list[tuple[bool, str, str]] = [
            (self.max_tokens >= 1, "max_tokens", "must be at least 1"),
            (0.0 <= self.temperature <= 2.0, "temperature", "must be between 0 and 2"),
            (0.0 < self.top_p <= 1.0, "top_p", "must be in (0, 1]"),
            (self.top_k >= -1, "top_k", "must be -1, 0 (off) or a positive integer"),
            (0.0 <= self.min_p <= 1.0, "min_p", "must be between 0 and 1"),
            (0.0 < self.repetition_penalty <= 2.0, "repetition_penalty", "must be in (0, 2]"),
            (-2.0 <= self.presence_penalty <= 2.0, "presence_penalty", "must be in [-2, 2]"),
            (-2.0 <= self.frequency_penalty <= 2.0, "frequency_penalty", "must be in [-2, 2]"),
            (0.0 < self.typical_p <= 1.0, "typical_p", "must be in (0, 1]"),
            (
                self.prompt_logprobs is None or 0 <= self.prompt_logprobs <= 20,
                "logprobs",
                "must be between 0 and 20",
            ),
            (
                all(-100.0 <= b <= 100.0 for b in self.logit_bias.values()),
                "logit_bias",
                "values must be between -100 and 100",
            ),
            (self.min_tokens >= 0, "min_tokens", "must be non-negative"),
            (
                self.logprobs is None or 0 <= self.logprobs <= 20,
                "top_logprobs",
                "must be between 0 and 20",
            ),
            (all(isinstance(s, str) and s for s in self.stop), "stop", "must be non-empty"),
            (len(self.stop) <= 16, "stop", "at most 16 stop sequences"),
            (all(t >= 0 for t in self.stop_token_ids), "stop_token_ids", "must be >= 0"),
            (
                self.seed is None or SEED_MIN <= self.seed <= SEED_MAX,
                "seed",
                "must be a 64-bit signed integer (between -2**63 and 2**63 - 1)",
            ),
        ]
        for ok, param, msg in checks:
            if not ok:
                raise ParamError(param, f"{param} {msg}")

    def check_token_ids(self, vocab_size: int) -> None:
        """Token ids the sampler indexes with must lie inside the model's vocabulary."""
        outside = [t for t in self.logit_bias if not 0 <= t < vocab_size]
        if outside:
            raise ParamError(
                "logit_bias",
                f"logit_bias token id {outside[0]} is outside the vocabulary "
                f"(0 to {vocab_size - 1})",
            )
        bad = [t for t in self.stop_token_ids if not 0 <= t < vocab_size]
        if bad:
            raise ParamError(
                "stop_token_ids",
                f"stop_token_ids {bad[0]} is outside the vocabulary (0 to {vocab_size - 1})",
            )

    def _check_types(self) -> None:
        ints = ("max_tokens", "top_k", "min_tokens")
        floats = (
            "temperature",
            "top_p",
            "min_p",
            "repetition_penalty",
            "presence_penalty",
            "frequency_penalty",
            "typical_p",
        )
        for name in ints:
            if not _is_int(getattr(self, name)):
                raise ParamError(name, f"{name} must be an integer")
        for name in floats:
            if not _is_number(getattr(self, name)):
                raise ParamError(name, f"{name} must be a finite number")
        optional_ints = (("seed", self.seed), ("top_logprobs", self.logprobs))
        for name, value in optional_ints:
            if value is not None and not _is_int(value):
                raise ParamError(name, f"{name} must be an integer")
        bias = self.logit_bias
        if not isinstance(bias, dict) or not all(
            _is_int(t) and _is_number(b) for t, b in bias.items()
        ):
            raise ParamError("logit_bias", "logit_bias must map token ids to finite numbers")
        if not isinstance(self.stop, list) or not all(isinstance(s, str) for s in self.stop):
            raise ParamError("stop", "stop must be a list of strings")
        if not isinstance(self.stop_token_ids, list) or not all(
            _is_int(t) for t in self.stop_token_ids
        ):
            raise ParamError("stop_token_ids", "stop_token_ids must be a list of integers")


@dataclass
class TokenLogprob:
    token_id: int
    logprob: float
    top: list[tuple[int, float]]


@dataclass
class StepOutput:
    """What one request gained in one engine step (sent to the request's consumer)."""

    text: str = ""
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[TokenLogprob] = field(default_factory=list)
    finished: bool = False
    finish_reason: str | None = None  # "stop" | "length" | "abort" | "error"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str | None = None
    matched_stop: str | int | None = None  # the stop string or token id that ended it
    # With the first token of a request that asked: one entry per prompt token (the
    # first is None: nothing scores it).
    prompt_logprobs: list[TokenLogprob | None] | None = None
    cached_tokens: int = 0  # prompt tokens whose KV came from the prefix cache
