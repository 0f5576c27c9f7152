"""Loss masks, truncation counting and length-grouped batching."""

from __future__ import annotations

from typing import Any

from hearth.datasets import ChatExample, CompletionExample, Message
from hearth_trainer.batching import Batch, padding_ratio, plan_epoch, split_rows
from hearth_trainer.tokenization import tokenize_all, tokenize_example


def _targets(tok: Any, ids: tuple[int, ...], mask: tuple[bool, ...]) -> str:
    return tok.decode([t for t, m in zip(ids, mask, strict=True) if m])


def test_chat_mask_covers_only_trained_assistant_turns(tiny_tokenizer: Any) -> None:
    ex = ChatExample(
        1,
        (
            Message("system", "Be brief."),
            Message("user", "First question"),
            Message("assistant", "Old answer", weight=0),
            Message("user", "Second question"),
            Message("assistant", "New answer"),
        ),
    )
    out = tokenize_example(tiny_tokenizer, ex, max_len=1000)
    assert not out.truncated
    assert len(out.ids) == len(out.mask)
    # Only the weight-1 turn, with its end-of-turn marker (so the model learns to stop).
    assert _targets(tiny_tokenizer, out.ids, out.mask) == "New answer<|im_end|>\n"
    full = tiny_tokenizer.decode(list(out.ids))
    assert full.startswith("<|im_start|>system\nBe brief.")


def test_every_assistant_turn_trained_by_default(tiny_tokenizer: Any) -> None:
    ex = ChatExample(
        1,
        (
            Message("user", "a"),
            Message("assistant", "one"),
            Message("user", "b"),
            Message("assistant", "two"),
        ),
    )
    out = tokenize_example(tiny_tokenizer, ex, max_len=1000)
    assert _targets(tiny_tokenizer, out.ids, out.mask) == "one<|im_end|>\ntwo<|im_end|>\n"


def test_completion_mask(tiny_tokenizer: Any) -> None:
    out = tokenize_example(tiny_tokenizer, CompletionExample(1, "The capital is", " Paris"), 1000)
    assert _targets(tiny_tokenizer, out.ids, out.mask) == " Paris<|im_end|>"
    assert not out.mask[0]


def test_truncation_is_counted_and_empty_targets_dropped(tiny_tokenizer: Any) -> None:
    long_prompt = ChatExample(
        7, (Message("user", "word " * 200), Message("assistant", "the answer"))
    )
    long_answer = ChatExample(8, (Message("user", "q"), Message("assistant", "word " * 200)))
    short = ChatExample(9, (Message("user", "q"), Message("assistant", "a")))
    toks, stats = tokenize_all(tiny_tokenizer, [long_prompt, long_answer, short], max_len=32)
    assert stats.truncated == 2
    # The long prompt lost its whole answer: nothing left to learn, so it is dropped.
    assert stats.dropped_no_target == 1 and stats.dropped_lines == [7]
    assert len(toks) == 2 and all(len(t) <= 32 for t in toks)
    assert toks[0].truncated and toks[0].target_count > 0


def test_batches_respect_token_budget_and_cover_every_example() -> None:
    lengths = [5 + (i * 37) % 120 for i in range(300)]
    batches = plan_epoch(lengths, batch_tokens=512, seed=1, epoch=0)
    seen = sorted(i for b in batches for i in b.indices)
    assert seen == list(range(300))
    for b in batches:
        assert b.width == max(lengths[i] for i in b.indices)
        assert b.padded_tokens <= 512
    # Grouping by length keeps padding small; random batches of the same size would not.
    assert padding_ratio(batches, lengths) > 0.9


def test_plan_is_seeded() -> None:
    lengths = list(range(1, 200))
    assert plan_epoch(lengths, 256, seed=3, epoch=1) == plan_epoch(lengths, 256, seed=3, epoch=1)
    assert plan_epoch(lengths, 256, seed=3, epoch=1) != plan_epoch(lengths, 256, seed=3, epoch=2)


def test_oversized_example_and_sample_cap() -> None:
    lengths = [1000, 10, 10, 10, 10]
    batches = plan_epoch(lengths, batch_tokens=100, seed=0, epoch=0, max_samples=2)
    assert Batch((0,), 1000) in batches  # alone, never dropped
    assert all(len(b.indices) <= 2 for b in batches)


def test_split_rows_bounds_micro_batches() -> None:
    lengths = [50] * 10
    parts = split_rows(Batch(tuple(range(10)), 50), lengths, micro_tokens=120)
    assert [len(p.indices) for p in parts] == [2, 2, 2, 2, 2]
    assert sorted(i for p in parts for i in p.indices) == list(range(10))
