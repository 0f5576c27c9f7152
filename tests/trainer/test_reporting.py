"""Progress reporters: file lines, FineTuningJob status patches, failures swallowed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hearth_trainer.reporting import (
    FileReporter,
    KubernetesReporter,
    MultiReporter,
    default_reporters,
)

PROGRESS = {"percent": 50.0, "epoch": 1, "step": 5, "totalSteps": 10, "trainLoss": 1.5}


class FakeApi:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.kwargs: list[dict[str, Any]] = []
        self.fail = fail

    def patch_namespaced_custom_object_status(self, *args: Any, **kwargs: Any) -> None:
        self.calls.append(args)
        self.kwargs.append(kwargs)
        if self.fail:
            raise ConnectionError("api server gone")


def test_file_reporter_appends_json_lines(tmp_path: Path) -> None:
    r = FileReporter(tmp_path / "sub" / "progress.jsonl")
    r.report(PROGRESS)
    r.report({**PROGRESS, "step": 6}, final=True)
    lines = [json.loads(x) for x in (tmp_path / "sub" / "progress.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [5, 6] and "time" in lines[0]


class FakeClock:
    """A monotonic clock the test moves by hand; it starts at 0, like a machine just booted."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_kubernetes_reporter_merge_patches_status_and_throttles() -> None:
    api, clock = FakeApi(), FakeClock()
    r = KubernetesReporter("acme", "job-1", api=api, min_interval_s=3600, clock=clock)
    r.report(PROGRESS)  # the first report goes out, however early
    clock.now = 3599.0
    r.report(PROGRESS)  # throttled: within the interval of the first
    r.report({**PROGRESS, "percent": 100.0}, final=True)  # never throttled
    assert len(api.calls) == 2
    group, version, ns, plural, name, body = api.calls[0]
    assert (group, version, ns, plural, name) == (
        "hearth.dev",
        "v1alpha1",
        "acme",
        "finetuningjobs",
        "job-1",
    )
    assert body == {"status": {"jobProgress": PROGRESS}}
    assert api.kwargs[0]["_content_type"] == "application/merge-patch+json"


@pytest.mark.parametrize("boot", [0.0, 1.0, 1e9], ids=["at-boot", "just-booted", "long-up"])
def test_first_report_goes_out_whatever_the_clock_reads(boot: float) -> None:
    """Regression: a report within ``min_interval_s`` of the clock's zero was dropped."""
    api, clock = FakeApi(), FakeClock(boot)
    r = KubernetesReporter("acme", "job-1", api=api, min_interval_s=60, clock=clock)
    r.report(PROGRESS)
    assert len(api.calls) == 1
    clock.now = boot + 59.0
    r.report(PROGRESS)
    assert len(api.calls) == 1
    clock.now = boot + 60.0
    r.report(PROGRESS)
    assert len(api.calls) == 2


def test_reporting_failures_never_raise(caplog: pytest.LogCaptureFixture) -> None:
    api = FakeApi(fail=True)
    r = KubernetesReporter("acme", "job-1", api=api, min_interval_s=0)
    for _ in range(5):
        r.report(PROGRESS)
    assert len(api.calls) == 5
    assert "could not patch FineTuningJob acme/job-1" in caplog.text

    class Broken:
        def report(self, progress: dict[str, Any], final: bool = False) -> None:
            raise RuntimeError("boom")

    MultiReporter([Broken()]).report(PROGRESS)  # logged, not raised


def test_default_reporters_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HEARTH_JOB_NAMESPACE", raising=False)
    monkeypatch.delenv("HEARTH_JOB_NAME", raising=False)
    assert [type(r) for r in default_reporters(tmp_path / "p").reporters] == [FileReporter]
    monkeypatch.setenv("HEARTH_JOB_NAMESPACE", "acme")
    monkeypatch.setenv("HEARTH_JOB_NAME", "job-1")
    kinds = [type(r) for r in default_reporters(None).reporters]
    assert kinds == [KubernetesReporter]
