"""``--precision``: the int8 linear's error is small and per output channel, LoRA still
applies on top of it in float, combinations the engine cannot honour are refused at
start, and a real ``hearth-server serve --precision int8`` process answers the SDK."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from hearth_server.cli import main
from hearth_server.engine.lora import LoRAWeights, Segment, SlotTable, patch_model
from hearth_server.models.loading import LoadPlan, load_model, plan_precision
from hearth_server.models.quantize import Int8Linear, quantize_weight
from tests.server.processes import running_server


def _rel_err(got: torch.Tensor, want: torch.Tensor) -> float:
    return float((got - want).norm() / want.norm())


def test_int8_linear_is_close_to_fp32_in_every_output_channel() -> None:
    torch.manual_seed(0)
    linear = nn.Linear(96, 40)
    with torch.no_grad():
        linear.weight[3] *= 1e-4  # a channel far smaller than the others keeps its precision
        linear.weight[7] = 0.0  # and an all-zero one stays exactly zero
    q = Int8Linear(linear)
    assert q.weight.dtype == torch.int8 and q.weight.shape == (40, 96)
    x = torch.randn(16, 96)
    with torch.inference_mode():
        want, got = linear(x), q(x)
    assert got.dtype == torch.float32
    assert _rel_err(got, want) < 0.01
    bias = linear.bias.detach()
    no_bias, got_no_bias = want - bias, got - bias
    assert _rel_err(got_no_bias[:, 3], no_bias[:, 3]) < 0.01  # per-channel, not per-tensor
    assert torch.equal(got_no_bias[:, 7], torch.zeros(16))
    # the stored scales are exact: dequantising reproduces weights within half a step
    w8, scales = quantize_weight(linear.weight)
    step = scales.float()[:, None]
    assert ((w8.float() * step - linear.weight).abs() <= step / 2 + 1e-12).all()


def test_lora_applies_in_float_on_top_of_int8(tiny_dir: Path) -> None:
    model, _, _ = load_model(tiny_dir, precision="int8")
    assert not any(type(m) is nn.Linear for m in model.modules())  # the head too
    ctx, modules = patch_model(model, 1, 8)
    key = "model.layers.0.mlp.up_proj"
    layer = modules[key]
    assert isinstance(layer.base, Int8Linear)
    g = torch.Generator().manual_seed(1)
    weights = LoRAWeights("a", Path("/nowhere"), 4)
    for k, m in modules.items():
        a = torch.randn(m.in_features, 4, generator=g)
        weights.tensors[k] = (a, torch.randn(4, m.out_features, generator=g))
    assert SlotTable(1, modules).acquire(weights) == 0
    x = torch.randn(3, layer.in_features, generator=g)
    with torch.inference_mode():
        ctx.set([Segment(1, 3, 0)], 1, torch.float32, torch.device("cpu"))
        try:
            got = layer(x)
        finally:
            ctx.clear()
        base = layer.base(x)
    a, b = weights.tensors[key]
    torch.testing.assert_close(got[0], base[0], rtol=0, atol=0)
    torch.testing.assert_close(got[1:], base[1:] + x[1:] @ a @ b)


@pytest.mark.parametrize(
    ("precision", "dtype", "device", "plan"),
    [
        ("auto", "auto", "cpu", LoadPlan("auto")),
        ("auto", "bfloat16", "cpu", LoadPlan("bfloat16")),  # --dtype alone still works
        ("fp32", "auto", "cpu", LoadPlan("float32")),
        ("bf16", "bfloat16", "cuda", LoadPlan("bfloat16")),  # agreeing is fine
        ("fp16", "auto", "cuda:1", LoadPlan("float16")),
        ("int8", "auto", "cpu", LoadPlan("float32", int8=True)),
        ("int8", "float32", "cpu", LoadPlan("float32", int8=True)),
    ],
)
def test_precision_plans(precision: str, dtype: str, device: str, plan: LoadPlan) -> None:
    assert plan_precision(precision, dtype, device) == plan


@pytest.mark.parametrize(
    ("precision", "dtype", "device", "reason"),
    [
        ("int8", "auto", "cuda", "--precision int8 is served on CPU only"),
        ("int8", "bfloat16", "cpu", "--precision int8 computes in float32"),
        ("fp16", "bfloat16", "cpu", "--precision fp16 and --dtype bfloat16 disagree"),
        ("fp8", "auto", "cpu", "--precision must be one of auto, fp32, fp16, bf16, int8"),
    ],
)
def test_precision_refusals_say_why(precision: str, dtype: str, device: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        plan_precision(precision, dtype, device)


def test_cli_refuses_a_precision_it_cannot_honour_before_loading(capsys) -> None:
    argv = ["serve", "/does/not/exist", "--precision", "bf16", "--dtype", "float16"]
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "--precision bf16 and --dtype float16 disagree" in capsys.readouterr().err


@pytest.fixture(scope="module")
def int8_server(
    tiny_dir: Path, tiny_adapters: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    log_path = tmp_path_factory.mktemp("int8") / "server.log"
    with running_server(
        log_path,
        "--served-model-name", "tiny",
        "--precision", "int8",
        "--lora", f"alpha={tiny_adapters['alpha']}",
        model=str(tiny_dir),
    ) as url:  # fmt: skip
        yield url
    assert "to int8" in log_path.read_text()  # the log says what was quantised


@pytest.mark.timeout(300)
def test_server_serves_int8_with_a_lora_on_top(int8_server: str) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=f"{int8_server}/v1", api_key="unused")
    answers: dict[str, Any] = {}
    for model in ("tiny", "alpha"):
        answers[model] = client.completions.create(
            model=model,
            prompt="The capital of France is",
            max_tokens=8,
            temperature=0,
            extra_body={"ignore_eos": True},
        )
        assert answers[model].usage.completion_tokens == 8
    assert answers["tiny"].choices[0].text != answers["alpha"].choices[0].text
