"""Engine-level request types, independent of any HTTP dialect."""

from __future__ import annotations

from dataclasses import dataclass, field


class ParamError(ValueError):
    """An invalid sampling value; ``param`` names the offending field."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


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

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0 or self.top_k == 1

    def validate(self) -> None:
        """Range checks shared by every dialect; raise ParamError naming the field."""
        checks: list[tuple[bool, str, str]] = [
            (self.max_tokens >= 1, "max_tokens", "must be at least 1"),
            (0.0 <= self.temperature <= 2.0, "temperature", "must be between 0 and 2"),
            (0.0 < self.top_p <= 1.0, "top_p", "must be in (0, 1]"),
            (self.top_k >= -1, "top_k", "must be -1, 0 (off) or a positive integer"),
            (0.0 <= self.min_p <= 1.0, "min_p", "must be between 0 and 1"),
            (0.0 < self.repetition_penalty <= 2.0, "repetition_penalty", "must be in (0, 2]"),
            (-2.0 <= self.presence_penalty <= 2.0, "presence_penalty", "must be in [-2, 2]"),
            (-2.0 <= self.frequency_penalty <= 2.0, "frequency_penalty", "must be in [-2, 2]"),
            (self.min_tokens >= 0, "min_tokens", "must be non-negative"),
            (
                self.logprobs is None or 0 <= self.logprobs <= 20,
                "top_logprobs",
                "must be between 0 and 20",
            ),
            (all(isinstance(s, str) and s for s in self.stop), "stop", "must be non-empty"),
            (len(self.stop) <= 16, "stop", "at most 16 stop sequences"),
            (all(t >= 0 for t in self.stop_token_ids), "stop_token_ids", "must be >= 0"),
        ]
        for ok, param, msg in checks:
            if not ok:
                raise ParamError(param, f"{param} {msg}")


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
