"""Mixed-LoRA batches: every packed layout of rows (dense block, one-by-one runs, both,
base rows between them, ranks below the maximum) must give each row exactly what a
per-row oracle computes from the adapter's own A and B; and the engine's mixed batches
must give each request what it gets alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from hearth_server.engine.lora import (
    LoRALinear,
    LoRAWeights,
    Segment,
    SlotTable,
    patch_model,
    plan_runs,
)
from tests.server.conftest import generate, load_tiny, make_adapter

N_SLOTS, MAX_RANK = 4, 16
RANKS = (8, 3, 16, 1)  # one per slot: padding to MAX_RANK must add nothing


def _random_adapter(name: str, modules: dict[str, LoRALinear], rank: int, seed: int) -> LoRAWeights:
    g = torch.Generator().manual_seed(seed)
    weights = LoRAWeights(name=name, path=Path("/nowhere"), rank=rank)
    for key, m in modules.items():
        a = torch.randn(m.in_features, rank, generator=g) * 0.3
        b = torch.randn(rank, m.out_features, generator=g) * 0.3
        weights.tensors[key] = (a, b)
    return weights


@pytest.fixture(scope="module")
def patched(tiny_dir: Path) -> tuple[Any, dict[str, LoRALinear], list[LoRAWeights], list[int]]:
    model, _ = load_tiny(tiny_dir)
    ctx, modules = patch_model(model, N_SLOTS, MAX_RANK)
    table = SlotTable(N_SLOTS, modules)
    adapters = [_random_adapter(f"a{i}", modules, r, 10 + i) for i, r in enumerate(RANKS)]
    slots = [table.acquire(w) for w in adapters]
    assert slots == [0, 1, 2, 3]  # lowest free slot first
    return ctx, modules, adapters, [s for s in slots if s is not None]


def _rows_of(layout: list[tuple[int, int]]) -> tuple[list[int], list[Segment]]:
    """[(n_rows, adapter index or -1)] -> per-row adapter, and the runner's segments."""
    per_row: list[int] = []
    segments: list[Segment] = []
    for n, adapter in layout:
        if adapter >= 0:
            segments.append(Segment(len(per_row), len(per_row) + n, adapter))
        per_row += [adapter] * n
    return per_row, segments


def _oracle(
    layer: LoRALinear, key: str, x: torch.Tensor, per_row: list[int], adapters: list[LoRAWeights]
) -> torch.Tensor:
    rows = []
    for i, adapter in enumerate(per_row):
        y = layer.base(x[i : i + 1])
        if adapter >= 0:
            a, b = adapters[adapter].tensors[key]
            y = y + x[i : i + 1] @ a @ b
        rows.append(y)
    return torch.cat(rows)


LAYOUTS = {
    # decode of a mixed batch: base rows first, then short runs -> one dense block
    "dense": [(2, -1), (2, 0), (1, 1), (3, 2), (2, 3)],
    # one adapter on many rows -> one run
    "one-long-run": [(12, 1)],
    # a long decode run among short ones, then a prefill chunk
    "long-and-short": [(1, -1), (1, 0), (10, 1), (2, 2), (1, 3), (30, 0)],
    # short runs separated by a long base prefill: not one dense block
    "base-gap": [(1, 0), (2, 3), (40, -1), (3, 2), (1, 1)],
    # slots 0 and 3 only: a dense block would read slots 1 and 2 for nothing
    "sparse-slots": [(2, 0), (2, 3), (4, -1)],
}


@pytest.mark.parametrize("layout", list(LAYOUTS.values()), ids=list(LAYOUTS))
def test_packed_rows_match_the_per_row_oracle(patched: Any, layout: list[tuple[int, int]]) -> None:
    ctx, modules, adapters, _ = patched
    per_row, segments = _rows_of(layout)
    keys = [
        k for k in modules if k.startswith(("model.layers.0.self_attn.", "model.layers.1.mlp."))
    ]
    g = torch.Generator().manual_seed(len(per_row))
    # One input tensor per shared-input group (q/k/v; gate/up), as the model calls them.
    inputs: dict[str, torch.Tensor] = {}
    for k in keys:
        role = k.rsplit(".", 1)[1]
        group = (
            "qkv"
            if role in ("q_proj", "k_proj", "v_proj")
            else "gu"
            if role in ("gate_proj", "up_proj")
            else role
        )
        if group not in inputs:
            inputs[group] = torch.randn(len(per_row), modules[k].in_features, generator=g)
        inputs[k] = inputs[group]
    with torch.inference_mode():
        ctx.set(segments, N_SLOTS, torch.float32, torch.device("cpu"))
        try:
            got = {k: modules[k](inputs[k]) for k in keys}
        finally:
            ctx.clear()
        for k in keys:
            want = _oracle(modules[k], k, inputs[k], per_row, adapters)
            torch.testing.assert_close(got[k], want, rtol=1e-5, atol=1e-5, msg=k)


def test_plan_runs_batches_short_runs_and_keeps_long_ones_apart() -> None:
    cpu = torch.device("cpu")
    _, segments = _rows_of(LAYOUTS["long-and-short"])
    rest, dense = plan_runs(segments, cpu)
    assert [(s.start, s.end) for s in rest] == [(1, 2), (2, 12), (15, 45)]
    assert dense is not None and (dense.start, dense.end, dense.lo, dense.hi) == (12, 15, 2, 4)
    assert dense.off[:, :, 0, 0].tolist() == [[False, True], [False, True], [True, False]]

    _, segments = _rows_of(LAYOUTS["dense"])
    rest, dense = plan_runs(segments, cpu)
    assert rest == [] and dense is not None and (dense.start, dense.end) == (2, 10)

    for name in ("one-long-run", "sparse-slots"):
        _, segments = _rows_of(LAYOUTS[name])
        assert plan_runs(segments, cpu) == (segments, None), name


def test_overflow_in_one_slot_never_reaches_other_rows(tiny_dir: Path) -> None:
    model, _ = load_tiny(tiny_dir)
    ctx, modules = patch_model(model, 2, MAX_RANK)
    table = SlotTable(2, modules)
    calm = _random_adapter("calm", modules, 4, 1)
    wild = _random_adapter("wild", modules, 4, 2)
    for key, (a, b) in wild.tensors.items():
        wild.tensors[key] = (a.sign() * 3e38, b)
    assert [table.acquire(calm), table.acquire(wild)] == [0, 1]
    key = "model.layers.0.self_attn.q_proj"
    layer = modules[key]
    x = torch.randn(4, layer.in_features) * 10
    per_row, segments = _rows_of([(1, -1), (1, 0), (2, 1)])
    with torch.inference_mode():
        ctx.set(segments, 2, torch.float32, torch.device("cpu"))
        try:
            y = layer(x)
        finally:
            ctx.clear()
    assert not torch.isfinite(y[2:]).all()  # the wild adapter's own rows overflow
    torch.testing.assert_close(y[:2], _oracle(layer, key, x[:2], per_row[:2], [calm, wild]))


def test_engine_mixed_batch_with_long_and_short_runs_matches_solo_runs(
    make_engine, tiny_dir: Path, tiny_adapters: dict[str, Path], tmp_path: Path
) -> None:
    from hearth_server.engine.adapters import AdapterInfo
    from hearth_server.engine.params import SamplingParams

    paths = {**tiny_adapters, "gamma": make_adapter(tiny_dir, tmp_path / "gamma", seed=3, rank=2)}
    engine = make_engine(max_loras=3, max_cpu_loras=3, max_num_seqs=16)
    for name, path in paths.items():
        weights = engine.read_adapter(name, path)
        engine.adapters.add(AdapterInfo(name, str(path), path, weights.rank, 0.0), weights)
    _, tok = load_tiny(tiny_dir)
    prompts = [list(tok(t)["input_ids"]) for t in ("The capital of", "Robots paint", "def f(")]
    params = SamplingParams(max_tokens=10, temperature=0.0, ignore_eos=True)
    # 10 alpha rows form a long decode run; beta and gamma short ones next to base rows
    order: list[str | None] = [None, "beta", "gamma", *["alpha"] * 10, "beta", None, "gamma"]
    batch_prompts = [prompts[i % len(prompts)] for i in range(len(order))]
    solo = {
        (a, tuple(p)): generate(engine, [p], params, [a])[0].tokens
        for a, p in zip(order, batch_prompts, strict=True)
    }
    assert len({tuple(t) for t in solo.values()}) > 3, "adapters should change outputs"
    mixed = generate(engine, batch_prompts, params, order)
    assert [c.tokens for c in mixed] == [
        solo[(a, tuple(p))] for a, p in zip(order, batch_prompts, strict=True)
    ]


def test_non_finite_b_keeps_its_slot_out_of_the_dense_block(tiny_dir: Path) -> None:
    """In a dense block every row meets every slot's B (times zero; 0 * NaN is NaN), so
    a slot whose B is not finite (it slipped past load_adapter) runs on its own."""
    model, _ = load_tiny(tiny_dir)
    ctx, modules = patch_model(model, 3, MAX_RANK)
    table = SlotTable(3, modules)
    adapters = [_random_adapter(f"a{i}", modules, 4, i) for i in range(3)]
    for key, (a, b) in adapters[2].tensors.items():
        adapters[2].tensors[key] = (a, torch.full_like(b, float("nan")))
    assert [table.acquire(w) for w in adapters] == [0, 1, 2]
    assert ctx.unsafe_slots == {2}
    key = "model.layers.1.self_attn.v_proj"
    layer = modules[key]
    x = torch.randn(5, layer.in_features)
    per_row, segments = _rows_of([(1, -1), (2, 0), (1, 1), (1, 2)])
    with torch.inference_mode():
        ctx.set(segments, 3, torch.float32, torch.device("cpu"))
        try:
            assert ctx.dense is not None and (ctx.dense.lo, ctx.dense.hi) == (0, 2)
            assert [s.slot for s in ctx.segments] == [2]
            y = layer(x)
        finally:
            ctx.clear()
    assert torch.isnan(y[4]).all()
    clean = [0, 1, 2, 3]
    want = _oracle(layer, key, x, per_row, adapters)
    torch.testing.assert_close(y[clean], want[clean])
    table.release(2)
    table.drop("a2")
    assert table.acquire(_random_adapter("a3", modules, 4, 3)) == 2
    assert ctx.unsafe_slots == set()  # a finite adapter in the slot makes it safe again
