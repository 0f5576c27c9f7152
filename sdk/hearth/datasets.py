"""The Fireworks JSONL dataset format and its validation rules, shared by every component.

CHAT: ``{"messages": [{"role": "system|user|assistant", "content": "...", "weight": 0|1}]}``
(system optional but first; at least one assistant turn; ``weight`` 0 excludes a turn
from the loss). COMPLETION: ``{"prompt": "...", "completion": "..."}``.

The operator validates ConfigMap datasets in-process with this module and the trainer
validates every other source with it, so both give the same verdict with the same words.
It is pure Python on purpose: the operator must not import torch or transformers (a
unit test holds that). A tokenizer (any object with ``__call__`` and
``apply_chat_template``, i.e. a transformers tokenizer) is optional and only used to
count tokens exactly; without it tokens are estimated as characters / 4. Reading a
dataset from a URI is the trainer's (``hearth_trainer.datasets``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

Format = Literal["CHAT", "COMPLETION"]
FORMATS: tuple[Format, ...] = ("CHAT", "COMPLETION")
ROLES = ("system", "user", "assistant")
MIN_EXAMPLES = 3
MAX_EXAMPLES = 3_000_000
#: How many error lines a report keeps (the total is always counted).
DEFAULT_MAX_ERRORS = 20
#: Characters per token when no tokenizer is given (a common rule of thumb for English BPE).
CHARS_PER_TOKEN = 4


@dataclass(frozen=True)
class Message:
    role: str
    content: str
    weight: int | None = None  # None = default (assistant turns are trained on)

    @property
    def trained(self) -> bool:
        return self.role == "assistant" and self.weight != 0


@dataclass(frozen=True)
class ChatExample:
    line: int
    messages: tuple[Message, ...]


@dataclass(frozen=True)
class CompletionExample:
    line: int
    prompt: str
    completion: str


Example = ChatExample | CompletionExample


@dataclass(frozen=True)
class LineError:
    line: int | None  # 1-based; None for whole-dataset errors
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line else self.message


@dataclass
class ValidationReport:
    format: Format
    example_count: int = 0
    estimated_token_count: int = 0
    average_turn_count: float = 0.0
    token_count_method: str = f"chars/{CHARS_PER_TOKEN}"
    errors: list[LineError] = field(default_factory=list)
    error_count: int = 0

    @property
    def valid(self) -> bool:
        return self.error_count == 0

    def to_json(self) -> dict[str, Any]:
        """camelCase, the Dataset status field names."""
        return {
            "valid": self.valid,
            "format": self.format,
            "exampleCount": self.example_count,
            "estimatedTokenCount": self.estimated_token_count,
            "averageTurnCount": round(self.average_turn_count, 3),
            "tokenCountMethod": self.token_count_method,
            "errorCount": self.error_count,
            "errors": [{"line": e.line, "message": e.message} for e in self.errors],
        }


class ExampleError(ValueError):
    """One line is not a valid example; the message says why."""


class DatasetInvalidError(Exception):
    """The dataset failed validation; ``report`` has the errors."""

    def __init__(self, report: ValidationReport) -> None:
        first = "; ".join(str(e) for e in report.errors[:3])
        super().__init__(f"dataset invalid ({report.error_count} error(s)): {first}")
        self.report = report


def parse_example(obj: Any, fmt: Format, line: int) -> Example:
    """Turn one decoded JSON value into an example or raise :class:`ExampleError`."""
    if not isinstance(obj, dict):
        raise ExampleError(f"expected a JSON object, got {type(obj).__name__}")
    if fmt == "COMPLETION":
        return _parse_completion(obj, line)
    return _parse_chat(obj, line)


def _parse_completion(obj: dict[str, Any], line: int) -> CompletionExample:
    for key in ("prompt", "completion"):
        if key not in obj:
            raise ExampleError(f"missing {key!r} (COMPLETION format needs prompt and completion)")
        if not isinstance(obj[key], str):
            raise ExampleError(f"{key!r} must be a string")
    if not obj["completion"].strip():
        raise ExampleError("empty content: 'completion' is empty")
    return CompletionExample(line, obj["prompt"], obj["completion"])


def _parse_chat(obj: dict[str, Any], line: int) -> ChatExample:
    raw = obj.get("messages")
    if raw is None:
        hint = " (this looks like COMPLETION format)" if "prompt" in obj else ""
        raise ExampleError(f"missing 'messages'{hint}")
    if not isinstance(raw, list) or not raw:
        raise ExampleError("'messages' must be a non-empty list")
    messages: list[Message] = []
    for i, m in enumerate(raw):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise ExampleError(f"{where} must be an object")
        role = m.get("role")
        if role not in ROLES:
            raise ExampleError(f"{where}: unknown role {role!r} (expected one of {ROLES})")
        if role == "system" and i != 0:
            raise ExampleError(f"{where}: system message must be first")
        content = m.get("content")
        if not isinstance(content, str):
            raise ExampleError(f"{where}: content must be a string")
        if not content.strip():
            raise ExampleError(f"{where}: empty content")
        weight = m.get("weight")
        # bool is an int subclass in Python; true/false are not 0/1 in the format.
        if weight is not None and (isinstance(weight, bool) or weight not in (0, 1)):
            raise ExampleError(f"{where}: weight must be 0 or 1, got {weight!r}")
        messages.append(Message(role, content, weight))
    if not any(m.role == "assistant" for m in messages):
        raise ExampleError("no assistant turn")
    if not any(m.trained for m in messages):
        raise ExampleError("no assistant turn to train on (every assistant turn has weight 0)")
    return ChatExample(line, tuple(messages))


def iter_parsed(
    lines: Iterable[str], fmt: Format
) -> Iterable[tuple[int, Example | None, LineError | None]]:
    """(line number, example or None, error or None) for every non-blank line."""
    for lineno, text in enumerate(lines, start=1):
        if not text.strip():
            continue  # blank lines (a trailing newline, say) carry no example
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            yield lineno, None, LineError(lineno, f"invalid JSON: {exc.msg} (column {exc.colno})")
            continue
        try:
            yield lineno, parse_example(obj, fmt, lineno), None
        except ExampleError as exc:
            yield lineno, None, LineError(lineno, str(exc))


def check_format(fmt: str) -> Format:
    upper = fmt.upper()
    if upper not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    return upper


def validate_lines(
    lines: Iterable[str],
    fmt: Format,
    tokenizer: Any = None,
    max_errors: int = DEFAULT_MAX_ERRORS,
) -> tuple[ValidationReport, list[Example]]:
    """Validate every line; return the report and the parsed examples."""
    report = ValidationReport(format=fmt)
    if tokenizer is not None:
        report.token_count_method = "tokenizer"
    examples: list[Example] = []
    turns = 0

    def add_error(err: LineError) -> None:
        report.error_count += 1
        if len(report.errors) < max_errors:
            report.errors.append(err)

    for _, example, error in iter_parsed(lines, fmt):
        if error is not None:
            add_error(error)
            continue
        assert example is not None
        examples.append(example)
        turns += len(example.messages) if isinstance(example, ChatExample) else 1
        report.estimated_token_count += count_tokens(example, tokenizer)
    report.example_count = len(examples)
    report.average_turn_count = turns / len(examples) if examples else 0.0
    total = len(examples) + report.error_count
    if len(examples) < MIN_EXAMPLES:
        add_error(
            LineError(
                None,
                f"too few examples: {len(examples)} valid of {total} "
                f"(at least {MIN_EXAMPLES} are needed)",
            )
        )
    elif len(examples) > MAX_EXAMPLES:
        add_error(LineError(None, f"too many examples: {len(examples)} (at most {MAX_EXAMPLES})"))
    return report, examples


def count_tokens(example: Example, tokenizer: Any = None) -> int:
    """Tokens the example occupies as the model sees it (template included)."""
    if tokenizer is None:
        if isinstance(example, ChatExample):
            chars = sum(len(m.content) for m in example.messages)
        else:
            chars = len(example.prompt) + len(example.completion)
        return max(1, -(-chars // CHARS_PER_TOKEN))
    if isinstance(example, ChatExample):
        text = render_chat(tokenizer, example.messages)
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])
    prompt = tokenizer(example.prompt)["input_ids"]
    completion = tokenizer(example.completion, add_special_tokens=False)["input_ids"]
    return len(prompt) + len(completion) + 1  # + end of sequence


def render_chat(
    tokenizer: Any, messages: Iterable[Message], add_generation_prompt: bool = False
) -> str:
    """The base model's chat template applied to ``messages``, as text."""
    payload = [{"role": m.role, "content": m.content} for m in messages]
    text: str = tokenizer.apply_chat_template(
        payload, tokenize=False, add_generation_prompt=add_generation_prompt
    )
    return text
