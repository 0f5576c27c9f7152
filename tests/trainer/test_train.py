"""Training on a tiny random llama: reproducibility, resume, atomic output, CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from hearth_trainer import cli
from hearth_trainer.config import TrainConfig
from hearth_trainer.train import Trainer, TrainingError, train
from tests.trainer.conftest import arithmetic_rows, write_jsonl

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "train.jsonl", arithmetic_rows(40))


def _cfg(tiny_dir: Path, dataset: Path, out: Path, **kw: Any) -> TrainConfig:
    base: dict[str, Any] = {
        "dataset": str(dataset),
        "output": out,
        "base_model": str(tiny_dir),
        "epochs": 2,
        "batch_size": 512,
        "learning_rate": 1e-2,
        "learning_rate_warmup_steps": 2,
        "checkpoint_steps": 1000,
        "seed": 7,
    }
    base.update(kw)
    return TrainConfig(**base)


def _losses(out: Path) -> list[float]:
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    return [x["trainLoss"] for x in lines if "trainLoss" in x]


def _adapter(out: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    return load_file(str(out / "adapter" / "adapter_model.safetensors"))


def _same_tensors(a: dict[str, Any], b: dict[str, Any]) -> bool:
    import torch

    return a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_trains_writes_adapter_metrics_and_result(tiny_dir: Path, dataset: Path, tmp_path: Path):
    out = tmp_path / "out"
    result = train(_cfg(tiny_dir, dataset, out))
    assert result["status"] == "completed"
    assert sorted(p.name for p in (out / "adapter").iterdir()) == [
        "adapter_config.json",
        "adapter_model.safetensors",
    ]
    meta = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert meta["r"] == 8 and meta["lora_alpha"] == 16
    assert meta["base_model_name_or_path"] == str(tiny_dir)
    losses = _losses(out)
    assert len(losses) == result["totalSteps"] == result["steps"]
    assert sum(losses[-3:]) < sum(losses[:3])  # it learns
    assert result["eval"]["source"] == "carveout:4" and result["finalEvalLoss"] is not None
    assert result["paddingEfficiency"] > 0.8
    saved = json.loads((out / "result.json").read_text())
    assert saved["fingerprint"] == result["fingerprint"]
    # A restarted pod after success does nothing and reports the same result.
    assert train(_cfg(tiny_dir, dataset, out))["fingerprint"] == result["fingerprint"]


def test_adapter_loads_in_hearth_server(tiny_dir: Path, dataset: Path, tmp_path: Path) -> None:
    import torch

    from hearth_server.engine.lora import load_adapter, patch_model
    from hearth_server.models.loading import load_model

    out = tmp_path / "out"
    train(_cfg(tiny_dir, dataset, out, epochs=1))
    model, _, _ = load_model(tiny_dir)
    _, modules = patch_model(model, n_slots=1, max_rank=16)
    weights = load_adapter("mine", out / "adapter", modules, max_rank=16, dtype=torch.float32)
    assert weights.rank == 8 and len(weights.tensors) == 2 * 7  # 2 layers x 7 projections


def test_same_seed_same_losses(tiny_dir: Path, dataset: Path, tmp_path: Path) -> None:
    train(_cfg(tiny_dir, dataset, tmp_path / "a"))
    train(_cfg(tiny_dir, dataset, tmp_path / "b"))
    train(_cfg(tiny_dir, dataset, tmp_path / "c", seed=8))
    assert _losses(tmp_path / "a") == _losses(tmp_path / "b")
    assert _losses(tmp_path / "a") != _losses(tmp_path / "c")
    assert _same_tensors(_adapter(tmp_path / "a"), _adapter(tmp_path / "b"))


def test_resume_matches_uninterrupted_run(tiny_dir: Path, dataset: Path, tmp_path: Path) -> None:
    full = train(_cfg(tiny_dir, dataset, tmp_path / "full", checkpoint_steps=2))
    out = tmp_path / "resumed"
    steps: list[int] = []

    def stop_after_5() -> bool:
        steps.append(1)
        return len(steps) == 5

    first = train(_cfg(tiny_dir, dataset, out, checkpoint_steps=2), should_stop=stop_after_5)
    assert first == {"status": "interrupted", "step": 5}
    assert not (out / "adapter").exists() and not (out / "result.json").exists()
    assert (out / "checkpoints" / "latest").read_text().strip() == "step-00000005"
    second = train(_cfg(tiny_dir, dataset, out, checkpoint_steps=2))
    assert second["resumed"] is True and second["steps"] == full["steps"]
    assert _losses(out) == pytest.approx(_losses(tmp_path / "full"), abs=1e-6)
    assert second["finalEvalLoss"] == pytest.approx(full["finalEvalLoss"], abs=1e-6)
    assert _same_tensors(_adapter(out), _adapter(tmp_path / "full"))


def test_resume_refuses_different_settings(tiny_dir: Path, dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    train(_cfg(tiny_dir, dataset, out), should_stop=lambda: True)
    with pytest.raises(TrainingError, match="different settings"):
        train(_cfg(tiny_dir, dataset, out, learning_rate=5e-3))


def test_failed_publish_leaves_no_adapter(
    tiny_dir: Path, dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash_midway(self: Trainer, tmp: Path) -> None:
        (tmp / "adapter_model.safetensors").write_bytes(b"half a tensor")
        raise OSError("disk full")

    monkeypatch.setattr(Trainer, "_write_adapter", crash_midway)
    out = tmp_path / "out"
    with pytest.raises(OSError, match="disk full"):
        train(_cfg(tiny_dir, dataset, out, epochs=1))
    assert sorted(p.name for p in out.iterdir()) == ["metrics.jsonl"]


def test_early_stop_publishes_best(tiny_dir: Path, dataset: Path, tmp_path: Path) -> None:
    # A huge learning rate makes the eval loss get worse after the first evaluation.
    result = train(
        _cfg(
            tiny_dir,
            dataset,
            tmp_path / "out",
            epochs=6,
            learning_rate=0.5,
            eval_steps=1,
            early_stop=True,
            early_stop_patience=1,
            lr_schedule="constant",
        )
    )
    assert result["stoppedEarly"] is True
    assert result["steps"] < result["totalSteps"]
    assert result["bestEvalLoss"] <= result["finalEvalLoss"]


def test_evaluation_dataset_and_completion_format(tiny_dir: Path, tmp_path: Path) -> None:
    rows = [{"prompt": f"{i} + 1 =", "completion": f" {i + 1}"} for i in range(12)]
    data = write_jsonl(tmp_path / "c.jsonl", rows)
    evals = write_jsonl(tmp_path / "e.jsonl", rows[:3])
    result = train(
        _cfg(
            tiny_dir,
            data,
            tmp_path / "out",
            format="COMPLETION",
            evaluation_dataset=str(evals),
            max_context_length=16,
        )
    )
    assert result["eval"]["source"] == str(evals) and result["eval"]["examples"] == 3
    assert result["train"]["examples"] == 12


# -- CLI ---------------------------------------------------------------------------------


def test_cli_validate_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write_jsonl(tmp_path / "good.jsonl", arithmetic_rows(3))
    bad = write_jsonl(tmp_path / "bad.jsonl", [*arithmetic_rows(3), "{oops"])
    assert cli.main(["validate", str(good), "--format", "CHAT", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["exampleCount"] == 3
    report_file = tmp_path / "report.json"
    assert cli.main(["validate", f"file://{bad}", "--json", "--result-file", str(report_file)]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["errors"] == [{"line": 4, "message": report["errors"][0]["message"]}]
    assert json.loads(report_file.read_text()) == report
    assert cli.main(["validate", str(tmp_path / "missing.jsonl"), "--json"]) == 3
    with pytest.raises(SystemExit) as exc:
        cli.main(["validate", str(good), "--format", "RL"])
    assert exc.value.code == 2


def test_cli_train_input_errors(tiny_dir: Path, dataset: Path, tmp_path: Path) -> None:
    out = str(tmp_path / "out")
    base = ["train", "--dataset", str(dataset), "--output", out]
    assert cli.main([*base, "--base-model", str(tmp_path / "nope")]) == 3
    assert cli.main([*base, "--base-model", str(tiny_dir), "--lora-rank", "0"]) == 2
    bad = write_jsonl(tmp_path / "bad.jsonl", ["{oops"])
    args = ["train", "--dataset", str(bad), "--output", out, "--base-model", str(tiny_dir)]
    assert cli.main(args) == 1


def _spawn(tiny_dir: Path, dataset: Path, out: Path, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [
        sys.executable,
        "-m",
        "hearth_trainer.cli",
        "train",
        "--base-model",
        str(tiny_dir),
        "--dataset",
        str(dataset),
        "--output",
        str(out),
        "--batch-size",
        "256",
        "--epochs",
        "40",
        "--checkpoint-steps",
        "3",
        "--seed",
        "1",
        *extra,
    ]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_checkpoint(out: Path, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 120
    while not (out / "checkpoints" / "latest").exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no checkpoint written"
        time.sleep(0.2)


@pytest.mark.slow  # runs hearth-trainer as a real process
def test_kill_minus_9_never_leaves_a_half_written_adapter(
    tiny_dir: Path, dataset: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    proc = _spawn(tiny_dir, dataset, out)
    _wait_for_checkpoint(out, proc)
    proc.kill()  # SIGKILL: no handler runs
    proc.communicate()
    assert not (out / "adapter").exists() and not (out / "result.json").exists()
    # SIGTERM (pod deletion/eviction): checkpoint after the current step, exit 75.
    progress = out / "progress.jsonl"
    before = len(progress.read_text().splitlines())
    proc = _spawn(tiny_dir, dataset, out)
    _wait_for_progress(progress, proc, before)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == cli.EXIT_INTERRUPTED, err
    assert "resumed from" in err
    assert not (out / "adapter").exists()


def _wait_for_progress(path: Path, proc: subprocess.Popen[str], after: int) -> None:
    """Wait until the process has written two progress lines beyond the first ``after``
    (its start report and one trained step), so its signal handler is installed."""
    deadline = time.monotonic() + 120
    while not path.exists() or len(path.read_text().splitlines()) < after + 2:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no progress"
        time.sleep(0.2)


def test_warm_start_continues_from_an_adapter(tiny_dir: Path, dataset: Path, tmp_path: Path):
    first = train(_cfg(tiny_dir, dataset, tmp_path / "a", epochs=1))
    # No --base-model: it comes from the adapter's base_model_name_or_path.
    cfg = _cfg(tiny_dir, dataset, tmp_path / "b", epochs=1, base_model=None)
    cfg.warm_start_from = str(tmp_path / "a" / "adapter")
    second = train(cfg)
    assert second["baseModel"] == str(tiny_dir)
    # Starting from trained weights, the first step's loss is already lower.
    assert _losses(tmp_path / "b")[0] < _losses(tmp_path / "a")[0]
    assert second["finalTrainLoss"] < first["finalTrainLoss"] * 1.5
