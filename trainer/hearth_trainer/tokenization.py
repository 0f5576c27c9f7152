"""Examples -> token ids plus a loss mask.

CHAT: the base model's chat template renders the whole conversation once. The character
span of each trained assistant turn is found by rendering prefixes: the text before the
turn is ``render(messages[:i], add_generation_prompt=True)`` and the text through it is
``render(messages[:i+1])``; tokens whose characters start inside that span carry loss.
Working on characters (via the fast tokenizer's offsets) instead of token counts of
separately tokenised prefixes keeps the mask right when BPE merges across a boundary.
The span ends after the template's end-of-turn marker, so the model learns to stop.

COMPLETION: prompt tokens (with the tokenizer's BOS, if it adds one) + completion tokens
+ EOS; loss on the completion and EOS.

Examples longer than ``max_len`` keep their first ``max_len`` tokens and are counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hearth.datasets import ChatExample, CompletionExample, Example, render_chat


class TokenizationError(ValueError):
    """An example cannot be tokenised with this model's tokenizer/template."""


@dataclass(frozen=True)
class TokenizedExample:
    ids: tuple[int, ...]
    # mask[i] is True when token i is a target (predicted from token i-1).
    mask: tuple[bool, ...]
    truncated: bool = False

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def target_count(self) -> int:
        # The first token has nothing before it to predict it from.
        return sum(self.mask[1:])


@dataclass
class TokenizeStats:
    examples: int = 0
    tokens: int = 0
    target_tokens: int = 0
    truncated: int = 0
    # Truncation cut away every trained token: the example cannot teach anything.
    dropped_no_target: int = 0
    dropped_lines: list[int] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "examples": self.examples,
            "tokens": self.tokens,
            "targetTokens": self.target_tokens,
            "truncatedExampleCount": self.truncated,
            "droppedExampleCount": self.dropped_no_target,
        }


def tokenize_example(tokenizer: Any, example: Example, max_len: int) -> TokenizedExample:
    if isinstance(example, CompletionExample):
        ids, mask = _completion(tokenizer, example)
    else:
        ids, mask = _chat(tokenizer, example)
    truncated = len(ids) > max_len
    if truncated:
        ids, mask = ids[:max_len], mask[:max_len]
    return TokenizedExample(tuple(ids), tuple(mask), truncated)


def tokenize_all(
    tokenizer: Any, examples: Sequence[Example], max_len: int
) -> tuple[list[TokenizedExample], TokenizeStats]:
    """Tokenise, count truncations, drop examples left with no target token."""
    stats = TokenizeStats()
    out: list[TokenizedExample] = []
    for example in examples:
        tok = tokenize_example(tokenizer, example, max_len)
        stats.truncated += tok.truncated
        if tok.target_count == 0:
            stats.dropped_no_target += 1
            stats.dropped_lines.append(example.line)
            continue
        out.append(tok)
        stats.examples += 1
        stats.tokens += len(tok)
        stats.target_tokens += tok.target_count
    return out, stats


def _completion(tokenizer: Any, ex: CompletionExample) -> tuple[list[int], list[bool]]:
    prompt = list(tokenizer(ex.prompt)["input_ids"]) if ex.prompt else _bos(tokenizer)
    completion = list(tokenizer(ex.completion, add_special_tokens=False)["input_ids"])
    eos = tokenizer.eos_token_id
    if eos is not None:
        completion.append(eos)
    return prompt + completion, [False] * len(prompt) + [True] * len(completion)


def _bos(tokenizer: Any) -> list[int]:
    bos = tokenizer.bos_token_id
    return [bos] if bos is not None and getattr(tokenizer, "add_bos_token", False) else []


def _chat(tokenizer: Any, ex: ChatExample) -> tuple[list[int], list[bool]]:
    full = render_chat(tokenizer, ex.messages)
    spans = assistant_spans(tokenizer, ex, full)
    enc = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(enc["input_ids"])
    offsets = enc["offset_mapping"]
    mask = [False] * len(ids)
    si = 0
    for i, (start, end) in enumerate(offsets):
        if end <= start:
            continue  # zero-width tokens carry no text of their own
        while si < len(spans) and start >= spans[si][1]:
            si += 1
        if si < len(spans) and spans[si][0] <= start < spans[si][1]:
            mask[i] = True
    return ids, mask


def assistant_spans(tokenizer: Any, ex: ChatExample, full: str) -> list[tuple[int, int]]:
    """Character spans of ``full`` holding the trained assistant turns."""
    spans: list[tuple[int, int]] = []
    cursor = 0
    for i, msg in enumerate(ex.messages):
        if msg.role != "assistant":
            continue
        before = render_chat(tokenizer, ex.messages[:i], add_generation_prompt=True)
        through = render_chat(tokenizer, ex.messages[: i + 1])
        if full.startswith(before) and full.startswith(through) and len(through) > len(before):
            start, end = len(before), len(through)
        else:
            # Templates that rewrite earlier turns (dates, stripped reasoning) are not
            # prefix-stable; fall back to finding the content itself after the cursor.
            pos = full.find(msg.content, cursor)
            if pos < 0:
                raise TokenizationError(
                    f"line {ex.line}: the chat template does not reproduce assistant turn "
                    f"{i} verbatim, so its loss mask cannot be computed"
                )
            start, end = pos, pos + len(msg.content)
        cursor = end
        if msg.trained:
            spans.append((start, end))
    return spans
