"""hearthctl's pure parts: output, durations, waiting, masks, error bodies, grammar."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import httpx
import pytest

from hearth.cli import build_parser, verb_first
from hearth.cli.output import details, field, table
from hearth.cli.sft_jobs import describe_progress
from hearth.cli.waiting import (
    ProgressLine,
    Target,
    WaitFailed,
    WaitTimedOut,
    parse_duration,
    wait_for,
)
from hearth.client.http import error_details, update_mask


def test_table_aligns_and_formats_cells() -> None:
    rows: list[dict] = [{"a": "x", "b": {"n": True}}, {"a": "longer", "b": None, "c": [1, 2]}]
    text = table(rows, [("A", field("a")), ("N", field("b.n")), ("C", field("c"))])
    assert text.splitlines() == ["A       N     C", "x       true", "longer        1, 2"]


def test_details_flattens_nested_fields() -> None:
    text = details({"name": "n", "policy": {"up": "30s", "targets": {"default": 0.8}}, "e": {}})
    assert text.splitlines() == [
        "name:                   n",
        "policy.up:              30s",
        "policy.targets.default: 0.8",
        "e:                      {}",
    ]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90.0), ("90s", 90.0), ("30m", 1800.0), ("1h30m", 5400.0), ("250ms", 0.25)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "1d", "m", "30m5", "0", "-5"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def _states(*states: str):
    answers = iter([{"state": s, "status": {"message": f"m-{s}"}} for s in states])
    return lambda: next(answers)


def test_wait_for_reports_each_change_once() -> None:
    clock, stream = Clock(), io.StringIO()
    target = Target("thing t", frozenset({"READY"}), frozenset({"FAILED"}))
    obj = wait_for(
        _states("CREATING", "CREATING", "READY"),
        target,
        timeout_s=60,
        interval_s=5,
        progress=ProgressLine(stream),
        sleep=clock.sleep,
        clock=clock,
    )
    assert obj["state"] == "READY" and clock.now == 10
    assert stream.getvalue().splitlines() == [
        "thing t: CREATING: m-CREATING",
        "thing t: READY: m-READY",
    ]


def test_wait_for_failure_and_timeout() -> None:
    target = Target("t", frozenset({"READY"}), frozenset({"FAILED"}))
    clock = Clock()
    with pytest.raises(WaitFailed, match="t is FAILED: m-FAILED"):
        wait_for(_states("CREATING", "FAILED"), target, timeout_s=60, interval_s=1,
                 progress=ProgressLine(io.StringIO()), sleep=clock.sleep, clock=clock)  # fmt: skip
    clock = Clock()
    with pytest.raises(WaitTimedOut, match="t is still CREATING after 3s"):
        wait_for(_states(*["CREATING"] * 10), target, timeout_s=3, interval_s=1,
                 progress=ProgressLine(io.StringIO()), sleep=clock.sleep, clock=clock)  # fmt: skip


def test_progress_rewrites_one_line_on_a_terminal() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Terminal()
    line = ProgressLine(stream)
    line.show("long text")
    line.show("short")
    line.close()
    assert stream.getvalue() == "\rlong text\rshort    \n"


def test_job_progress_line_leaves_out_what_is_not_reported() -> None:
    assert describe_progress({"state": "JOB_STATE_PENDING"}) == "PENDING"
    failed = {"state": "JOB_STATE_FAILED", "status": {"message": "OOM"}, "epochs": 3,
              "jobProgress": {"epoch": 2, "percent": 50.4}}  # fmt: skip
    assert describe_progress(failed) == "FAILED  epoch 2/3  50%  (OOM)"


def test_update_mask_is_snake_case() -> None:
    assert update_mask(["displayName", "autoscalingPolicy.scaleUpWindow", "public"]) == (
        "display_name,autoscaling_policy.scale_up_window,public"
    )


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"code": 5, "status": "NOT_FOUND", "message": "gone"}, ("NOT_FOUND", "gone")),
        ({"code": "NOT_FOUND", "message": "gone"}, ("NOT_FOUND", "gone")),
        ({"error": {"type": "not_found_error", "message": "no"}}, ("not_found_error", "no")),
        ({"detail": "Not Found"}, (None, "Not Found")),
        ({"error": "plain"}, (None, "plain")),
        ("upstream failed", (None, "upstream failed")),
    ],
)
def test_error_messages_from_any_body(body: object, expected: tuple[str | None, str]) -> None:
    content = body if isinstance(body, str) else json.dumps(body)
    assert error_details(httpx.Response(404, content=content)) == expected


def test_noun_verb_is_rewritten_verb_noun() -> None:
    nouns = {"deployment": "deployment", "model": "model"}
    assert verb_first(["deployment", "create", "m"], nouns) == ["create", "deployment", "m"]
    assert verb_first(["model", "load-lora", "x"], nouns) == ["load-lora", "x"]
    assert verb_first(["create", "deployment", "m"], nouns) == ["create", "deployment", "m"]
    assert verb_first(["validate", "model"], nouns) == ["validate", "model"]


def _commands(parser: argparse.ArgumentParser, prefix: str = "") -> list[str]:
    """Every runnable command line prefix (``create deployment``, ``load-lora``)."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                found += _commands(action.choices[choice.dest], f"{prefix} {choice.dest}")
            return found
    return [prefix.strip()]


def test_every_command_has_an_example_in_the_docs() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "hearthctl.md").read_text()
    commands = _commands(build_parser())
    assert "create deployment" in commands and "load-lora" in commands
    # `hearthctl local ...` is documented with hearth.local.
    ours = [command for command in commands if not command.startswith("local ")]
    missing = [command for command in ours if f"hearthctl {command}" not in text]
    assert missing == []
