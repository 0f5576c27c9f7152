"""hearth.datasets: the dataset rules the operator and the trainer share, free of torch."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from hearth.api import DatasetFormat
from hearth.datasets import FORMATS, check_format, validate_lines

#: Modules the operator must never pull in through the shared dataset rules.
HEAVY = ("torch", "transformers", "peft", "safetensors", "hearth_trainer", "hearth_server")


def heavy_modules_after_importing(module: str) -> list[str]:
    """The heavy modules a fresh interpreter holds after ``import module``."""
    # A fresh interpreter: this test process may already have imported torch.
    probe = (
        f"import sys, json, {module}\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=300
    )
    found: list[str] = json.loads(result.stdout)
    return found


@pytest.mark.parametrize("module", ["hearth.datasets", "hearth", "hearth.validation", "hearth.cli"])
def test_sdk_modules_import_no_heavy_dependency(module: str) -> None:
    assert heavy_modules_after_importing(module) == []


def test_the_probe_sees_a_heavy_import() -> None:
    """The check above can fail: a module that imports torch is seen doing so."""
    assert "torch" in heavy_modules_after_importing("torch")


def test_formats_are_the_api_enum() -> None:
    assert set(FORMATS) == {f.value for f in DatasetFormat}
    assert check_format("chat") == "CHAT"
    with pytest.raises(ValueError, match="format must be one of CHAT, COMPLETION"):
        check_format("PREFERENCE")


def test_the_rules_give_one_verdict_with_line_numbers() -> None:
    good = json.dumps(
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
    )
    report, examples = validate_lines([good, good, "{oops", good], "CHAT")
    assert len(examples) == 3 and not report.valid
    assert report.to_json()["errors"] == [{"line": 3, "message": report.errors[0].message}]
    assert report.errors[0].message.startswith("invalid JSON")
