"""Sampler, stop-string and incremental-detokenizer units (no model needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from hearth_server.engine.detok import IncrementalDecoder, StopChecker
from hearth_server.engine.params import (
    MIN_TEMPERATURE,
    SEED_MAX,
    SEED_MIN,
    ParamError,
    SamplingParams,
)
from hearth_server.engine.sampler import NON_FINITE, RowState, sample


def _tokens(logits: torch.Tensor, rows: list[RowState]) -> list[int | None]:
    return [r.token for r in sample(logits, rows)]


V = 10


def _row(**kw: object) -> RowState:
    seed = kw.pop("gen_seed", None)
    gen = torch.Generator().manual_seed(int(seed)) if seed is not None else None  # type: ignore[call-overload]
    prompt = kw.pop("prompt", [])
    output = kw.pop("output", [])
    return RowState(SamplingParams(**kw), prompt, output, gen, [])  # type: ignore[arg-type]


def _draws(logits: torch.Tensor, n: int = 300, **kw: object) -> set[int | None]:
    row = _row(gen_seed=0, **kw)
    return {_tokens(logits.unsqueeze(0), [row])[0] for _ in range(n)}


LOGITS = torch.tensor([5.0, 4.9, 4.8, 1.0, 0.5, 0.0, -1.0, -2.0, -3.0, -4.0])


def test_greedy_and_truncation_filters() -> None:
    assert _tokens(LOGITS.unsqueeze(0), [_row(temperature=0.0)]) == [0]
    assert _draws(LOGITS, top_k=1) == {0}
    assert _draws(LOGITS, top_k=3) <= {0, 1, 2} and len(_draws(LOGITS, top_k=3)) == 3
    assert _draws(LOGITS, top_p=0.01) == {0}
    assert _draws(LOGITS, top_p=0.9) <= {0, 1, 2}
    assert _draws(LOGITS, min_p=0.5) <= {0, 1, 2}
    assert len(_draws(LOGITS, temperature=2.0)) > 3  # a flat distribution reaches the tail


def test_penalties_change_the_greedy_choice() -> None:
    # Token 0 was already generated: a strong presence/frequency/repetition penalty
    # must move the argmax to token 1.
    for kw in ({"presence_penalty": 2.0}, {"frequency_penalty": 2.0}, {"repetition_penalty": 2.0}):
        row = _row(temperature=0.0, output=[0], **kw)
        assert _tokens(LOGITS.unsqueeze(0), [row]) == [1], kw
    # Repetition penalty also covers prompt tokens; presence penalty does not.
    repeat = _row(temperature=0.0, prompt=[0], repetition_penalty=2.0)
    assert _tokens(LOGITS.unsqueeze(0), [repeat]) == [1]
    presence = _row(temperature=0.0, prompt=[0], presence_penalty=2.0)
    assert _tokens(LOGITS.unsqueeze(0), [presence]) == [0]


def test_seeded_rows_are_independent_of_their_neighbours() -> None:
    logits = LOGITS.repeat(3, 1)
    alone = _tokens(LOGITS.unsqueeze(0), [_row(gen_seed=5)])
    rows = [_row(gen_seed=9), _row(gen_seed=5), _row(temperature=0.0)]
    together = _tokens(logits, rows)
    assert together[1] == alone[0] and together[2] == 0


def test_logprobs_report_raw_distribution() -> None:
    result = sample(LOGITS.unsqueeze(0), [_row(temperature=0.0, logprobs=2)])[0]
    lp = result.logprob
    assert lp is not None and lp.token_id == result.token == 0
    expected = torch.log_softmax(LOGITS, -1)
    assert lp.logprob == pytest.approx(float(expected[0]))
    assert [t for t, _ in lp.top] == [0, 1]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("temperature", -0.1),
        ("top_p", 0.0),
        ("top_k", -2),
        ("min_p", 1.5),
        ("repetition_penalty", 0.0),
        ("presence_penalty", 2.5),
        ("max_tokens", 0),
        ("logprobs", 21),
        ("stop", [""]),
    ],
)
def test_validation_names_the_field(field: str, value: object) -> None:
    with pytest.raises(ParamError) as err:
        SamplingParams(**{field: value}).validate()  # type: ignore[arg-type]
    assert err.value.param == ("top_logprobs" if field == "logprobs" else field)


def test_stop_checker_never_leaks_a_split_stop_string() -> None:
    s = StopChecker(["END"])
    out = [s.feed(d) for d in ("hello E", "N", "D and more")]
    assert "".join(t for t, _ in out) == "hello "
    assert [hit for _, hit in out] == [False, False, True]
    assert s.matched == "END"
    free = StopChecker(["END"])
    first, _ = free.feed("abcE")
    assert first == "ab"  # "cE" is held back: it could be the start of "END"
    assert free.feed("x", final=True) == ("cEx", False)  # released at the end


def test_incremental_decoder_handles_multibyte_characters(tiny_dir: Path) -> None:
    import transformers

    tok = transformers.AutoTokenizer.from_pretrained(tiny_dir)
    text = "Zwölf Boxkämpfer 日本語のテキスト"
    ids = tok(text)["input_ids"]
    dec = IncrementalDecoder(tok)
    pieces = [dec.push(t) for t in ids]
    assert "".join(pieces) + dec.flush() == tok.decode(ids)
    assert all("\ufffd" not in p for p in pieces)


def test_a_non_finite_row_fails_alone() -> None:
    for bad in (float("nan"), float("inf"), -float("inf")):
        logits = LOGITS.repeat(3, 1)
        logits[1, 4] = bad
        rows = [_row(temperature=0.0), _row(gen_seed=1, logprobs=2), _row(gen_seed=2)]
        results = sample(logits, rows)
        assert results[1].token is None and results[1].error == NON_FINITE
        assert results[0].token == 0 and results[0].error is None
        assert results[2].token is not None and results[2].error is None


def test_tiny_temperatures_count_as_the_minimum() -> None:
    assert SamplingParams(temperature=1e-45).effective_temperature == MIN_TEMPERATURE
    assert SamplingParams(temperature=0.7).effective_temperature == 0.7
    SamplingParams(temperature=1e-45).validate()  # accepted, sampled at MIN_TEMPERATURE
    # Logits 0.5 apart are 50 units apart at 0.01: the top token is all but certain.
    assert _draws(LOGITS, temperature=1e-45) == {0}
    huge = torch.tensor([3e38, -3e38, 1e38, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    assert _draws(huge, n=20, temperature=1e-45) == {0}
    assert _draws(huge, n=20, temperature=2.0) == {0}


def test_banned_ids_outside_the_vocabulary_are_ignored() -> None:
    row = _row(temperature=0.0)
    row.banned = [10**9, -1, V]
    assert _tokens(LOGITS.unsqueeze(0), [row]) == [0]
    row.banned = [0, -1]  # -1 must not ban the last token by negative indexing
    flat = torch.zeros(V)
    flat[V - 1] = 1.0
    assert _tokens(flat.unsqueeze(0), [row]) == [V - 1]


def test_a_row_with_every_token_banned_fails_alone() -> None:
    row = _row(gen_seed=3)
    row.banned = list(range(V))
    results = sample(LOGITS.repeat(2, 1), [row, _row(temperature=0.0)])
    assert results[0].token is None and results[0].error is not None
    assert "banned" in results[0].error
    assert results[1].token == 0


def test_penalties_ignore_out_of_vocabulary_history() -> None:
    row = _row(temperature=0.0, prompt=[-5, 10**6], output=[10**6], repetition_penalty=2.0)
    row.params.frequency_penalty = 1.0
    assert _tokens(LOGITS.unsqueeze(0), [row]) == [0]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("seed", 2**64),
        ("seed", 2**63),
        ("seed", -(2**63) - 1),
        ("seed", 1.5),
        ("temperature", float("nan")),
        ("top_p", float("inf")),
        ("max_tokens", True),
        ("max_tokens", 2.0),
        ("stop_token_ids", ["7"]),
        ("stop", "END"),
    ],
)
def test_validation_refuses_out_of_range_and_mistyped_values(field: str, value: object) -> None:
    with pytest.raises(ParamError) as err:
        SamplingParams(**{field: value}).validate()  # type: ignore[arg-type]
    assert err.value.param == field and field in str(err.value)
    assert isinstance(err.value, ValueError)


def test_seed_range_is_64_bit_signed() -> None:
    for seed in (SEED_MIN, SEED_MAX, 0, -1):
        SamplingParams(seed=seed).validate()
        torch.Generator().manual_seed(seed)  # the engine's use of it cannot overflow
    assert (SEED_MIN, SEED_MAX) == (-(2**63), 2**63 - 1)


def test_token_ids_are_checked_against_the_vocabulary() -> None:
    SamplingParams(stop_token_ids=[0, 399]).check_token_ids(400)
    with pytest.raises(ParamError, match="outside the vocabulary") as err:
        SamplingParams(stop_token_ids=[400]).check_token_ids(400)
    assert err.value.param == "stop_token_ids"
