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
from hearth_server.models.quantize import (
    INT4_GROUP,
    Int4Linear,
    Int8Linear,
    quantize_linears,
    quantize_weight,
    quantize_weight_int4,
)
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


def _int4_reference(linear: nn.Linear) -> torch.Tensor:
    """What the int4 codes stand for, from the rule (each group spans its min to max in
    15 steps; code c means ``(c - 8) * scale + offset``), computed here with the stored
    bfloat16 scales and offsets but without the kernel."""
    w = linear.weight.detach().float()
    out_f, in_f = w.shape
    _, scales_and_offsets = quantize_weight_int4(linear.weight)
    scale, offset = scales_and_offsets.float().transpose(0, 1).unbind(-1)  # (out, groups)
    base = (offset - 8 * scale)[..., None]
    groups = w.view(out_f, in_f // INT4_GROUP, INT4_GROUP)
    codes = torch.round((groups - base) / scale[..., None]).clamp(0, 15)
    return (codes * scale[..., None] + base).view(out_f, in_f)


def test_int4_linear_matches_its_own_rule_and_stays_close_to_fp32() -> None:
    torch.manual_seed(0)
    linear = nn.Linear(128, 48)
    with torch.no_grad():
        linear.weight[5, :32] = 0.25  # a constant group is reconstructed exactly
    q = Int4Linear(linear)
    assert q.weight.shape == (48, 128)  # the shape callers read; the codes are packed
    x = torch.randn(16, 128)
    with torch.inference_mode():
        want, got = linear(x), q(x)
        rule = x @ _int4_reference(linear).t() + linear.bias
    assert got.dtype == torch.float32
    assert _rel_err(got, rule) < 0.01  # only the activations' bfloat16 rounding differs
    assert _rel_err(got, want) < 0.15  # 16 levels per group of 32: about 8% here
    assert torch.allclose(_int4_reference(linear)[5, :32], torch.full((32,), 0.25))


def test_int4_keeps_int8_where_the_kernel_cannot_take_the_shape() -> None:
    # The kernel wants inputs in groups of 32 and outputs in multiples of 16.
    model = nn.Sequential(nn.Linear(64, 32), nn.Linear(32, 40), nn.Linear(40, 16))
    assert quantize_linears(model, bits=4) == 3
    assert [type(m) for m in model] == [Int4Linear, Int8Linear, Int8Linear]
    with pytest.raises(ValueError, match="bits must be 4 or 8"):
        quantize_linears(model, bits=2)


@pytest.mark.parametrize(("precision", "kind"), [("int8", Int8Linear), ("int4", Int4Linear)])
def test_lora_applies_in_float_on_top_of_quantised_linears(
    tiny_dir: Path, precision: str, kind: type[nn.Module]
) -> None:
    model, _, _ = load_model(tiny_dir, precision=precision)
    assert not any(type(m) is nn.Linear for m in model.modules())  # the head too
    ctx, modules = patch_model(model, 1, 8)
    key = "model.layers.0.mlp.up_proj"
    layer = modules[key]
    assert isinstance(layer.base, kind)
    assert isinstance(model.lm_head, Int8Linear)  # the head stays int8 under int4 too
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
        ("int4", "auto", "cpu", LoadPlan("float32", int4=True)),
    ],
)
def test_precision_plans(precision: str, dtype: str, device: str, plan: LoadPlan) -> None:
    assert plan_precision(precision, dtype, device) == plan


@pytest.mark.parametrize(
    ("precision", "dtype", "device", "reason"),
    [
        ("int8", "auto", "cuda", "--precision int8 is served on CPU only"),
        ("int8", "bfloat16", "cpu", "--precision int8 computes in float32"),
        ("int4", "auto", "cuda", "--precision int4 is served on CPU only"),
        ("fp16", "bfloat16", "cpu", "--precision fp16 and --dtype bfloat16 disagree"),
        ("fp8", "auto", "cpu", "--precision must be one of auto, fp32, fp16, bf16, int8, int4"),
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


@pytest.fixture(scope="module", params=["int8", "int4"])
def quantised_server(
    request: pytest.FixtureRequest,
    tiny_dir: Path,
    tiny_adapters: dict[str, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    precision = request.param
    log_path = tmp_path_factory.mktemp(precision) / "server.log"
    with running_server(
        log_path,
        "--served-model-name", "tiny",
        "--precision", precision,
        "--lora", f"alpha={tiny_adapters['alpha']}",
        model=str(tiny_dir),
    ) as url:  # fmt: skip
        yield url
    assert f"to {precision}" in log_path.read_text()  # the log says what was quantised


@pytest.mark.timeout(300)
def test_server_serves_a_quantised_model_with_a_lora_on_top(quantised_server: str) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=f"{quantised_server}/v1", api_key="unused")
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
