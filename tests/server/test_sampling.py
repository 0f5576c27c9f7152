"""Sampler, stop-string and incremental-detokenizer units (no model needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from hearth_server.engine.detok import IncrementalDecoder, StopChecker
from hearth_server.engine.params import ParamError, SamplingParams
from hearth_server.engine.sampler import RowState, sample


def _tokens(logits: torch.Tensor, rows: list[RowState]) -> list[int | None]:
    return [r.token for r in sample(logits, rows)]

V = 10


def _row(**kw: object) -> RowState:
    seed = kw.pop("gen_seed", None)
    gen = torch.Generator().manual_seed(int(seed)) if seed is not None else None  # type: ignore[call-overload]
    prompt = kw.pop("prompt", [])
    output = kw.pop("output", [])
    return RowState(SamplingParams(**kw), prompt, output, gen, [])  # type: ignore[arg-type]


def _draws(logits: torch.Tensor, n: int = 300, **kw: object) -> set[int]:
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
