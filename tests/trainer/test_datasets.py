"""Dataset validation: every error kind with its 1-based line number."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from hearth.datasets import ChatExample, CompletionExample, validate_lines
from hearth_trainer.datasets import validate
from hearth_trainer.sources import DatasetSourceError, local_path, open_lines

GOOD = json.dumps(
    {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
)


def _msgs(*msgs: object) -> str:
    return json.dumps({"messages": list(msgs)})


U = {"role": "user", "content": "q"}
A = {"role": "assistant", "content": "a"}

CHAT_ERRORS = [
    ("{not json", "invalid JSON"),
    ("[1, 2]", "expected a JSON object"),
    (json.dumps({"prompt": "p", "completion": "c"}), "missing 'messages'"),
    (_msgs(U, {"role": "bot", "content": "x"}), "unknown role 'bot'"),
    (_msgs(U, {"role": "system", "content": "s"}, A), "system message must be first"),
    (_msgs(U), "no assistant turn"),
    (_msgs(U, {**A, "weight": 2}), "weight must be 0 or 1"),
    (_msgs(U, {**A, "weight": True}), "weight must be 0 or 1"),
    (_msgs(U, {**A, "weight": 0}), "every assistant turn has weight 0"),
    (_msgs(U, {"role": "assistant", "content": "  "}), "empty content"),
    (_msgs({"role": "user", "content": ""}, A), "empty content"),
    (_msgs(U, {"role": "assistant", "content": ["parts"]}), "content must be a string"),
    (json.dumps({"messages": []}), "non-empty list"),
]


@pytest.mark.parametrize(("line", "expected"), CHAT_ERRORS)
def test_chat_error_kinds_report_their_line(line: str, expected: str) -> None:
    lines = [GOOD, GOOD, line, GOOD, GOOD]
    report, examples = validate_lines(lines, "CHAT")
    assert not report.valid
    assert report.error_count == 1
    assert report.errors[0].line == 3
    assert expected in report.errors[0].message
    assert report.example_count == 4 and len(examples) == 4


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        ({"prompt": "p"}, "missing 'completion'"),
        ({"prompt": 1, "completion": "c"}, "'prompt' must be a string"),
        ({"prompt": "p", "completion": ""}, "empty content"),
    ],
)
def test_completion_errors(obj: dict[str, object], expected: str) -> None:
    good = json.dumps({"prompt": "p", "completion": "c"})
    report, _ = validate_lines([good, json.dumps(obj), good, good], "COMPLETION")
    assert [(e.line, expected in e.message) for e in report.errors] == [(2, True)]


def test_too_few_examples_is_a_dataset_error() -> None:
    report, _ = validate_lines([GOOD, "", GOOD], "CHAT")  # blank lines are skipped
    assert not report.valid
    assert report.errors[0].line is None
    assert "too few examples: 2" in report.errors[0].message


def test_stats_and_weights() -> None:
    sys_turn = {"role": "system", "content": "be brief"}
    lines = [
        GOOD,
        _msgs(sys_turn, U, {**A, "weight": 0}, U, {**A, "weight": 1}),
        json.dumps({"messages": [U, A], "tools": []}),  # unknown top-level keys are allowed
    ]
    report, examples = validate_lines(lines, "CHAT")
    assert report.valid, report.errors
    assert report.example_count == 3
    assert report.average_turn_count == pytest.approx((2 + 5 + 2) / 3)
    assert report.estimated_token_count > 0 and report.token_count_method == "chars/4"
    ex = examples[1]
    assert isinstance(ex, ChatExample) and ex.line == 2
    assert [m.trained for m in ex.messages] == [False, False, False, False, True]


def test_first_n_errors_kept_all_counted() -> None:
    lines = ["bad"] * 30 + [GOOD] * 3
    report, _ = validate_lines(lines, "CHAT", max_errors=5)
    assert report.error_count == 30
    assert [e.line for e in report.errors] == [1, 2, 3, 4, 5]
    data = report.to_json()
    assert data["errorCount"] == 30 and len(data["errors"]) == 5 and data["valid"] is False


def test_token_count_with_tokenizer(tiny_tokenizer: object) -> None:
    report, _ = validate_lines([GOOD] * 3, "CHAT", tokenizer=tiny_tokenizer)
    assert report.token_count_method == "tokenizer"
    assert report.estimated_token_count > 3 * 5


def test_completion_format_parses(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text("\n".join(json.dumps({"prompt": f"p{i}", "completion": "c"}) for i in range(3)))
    report, examples = validate(f"file://{path}", "COMPLETION")
    assert report.valid and all(isinstance(e, CompletionExample) for e in examples)
    assert report.average_turn_count == 1.0


def test_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEARTH_PVC_ROOT", str(tmp_path))
    (tmp_path / "claim" / "data").mkdir(parents=True)
    (tmp_path / "claim" / "data" / "x.jsonl").write_text("a\nb\n")
    assert list(open_lines("pvc://claim/data/x.jsonl")) == ["a", "b"]
    with pytest.raises(DatasetSourceError, match="escapes"):
        local_path("pvc://claim/../../etc/passwd")
    with pytest.raises(DatasetSourceError, match="does not exist"):
        list(open_lines(str(tmp_path / "missing.jsonl")))
    with pytest.raises(DatasetSourceError, match="unsupported dataset URI scheme 'gs'"):
        list(open_lines("gs://bucket/x.jsonl"))


def test_https_fails_clearly_offline() -> None:
    # Port 9 on localhost: connection refused, no network needed.
    with pytest.raises(DatasetSourceError, match="cannot download dataset"):
        list(open_lines("https://127.0.0.1:9/data.jsonl"))


def test_s3_without_boto3_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)  # import fails like a missing package
    with pytest.raises(DatasetSourceError, match="install boto3"):
        list(open_lines("s3://bucket/key.jsonl"))
