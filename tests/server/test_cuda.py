"""``hearth-server --device cuda``: the CPU suite's oracles on a GPU (the tiny llama against
Hugging Face ``generate`` and PEFT on the same device, mixed-adapter batch invariance)
and a real server process on ``cuda`` answering the openai SDK.

Skipped where torch sees no CUDA device, which is every machine of this project unless
the device tool lends one (see docs/model-server.md, "Tests").
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from hearth_server.engine.engine import Engine, EngineConfig
from hearth_server.engine.params import SamplingParams
from hearth_server.models.loading import load_model
from tests.server.conftest import generate
from tests.server.processes import running_server
from tests.server.test_engine import PROMPTS, _hf_greedy, _ids

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason="no CUDA device here: hearth-server --device cuda is tested only on a GPU machine",
)

GREEDY = SamplingParams(max_tokens=12, temperature=0.0, ignore_eos=True)


@pytest.fixture
def cuda_engine(tiny_dir: Path, tiny_adapters: dict[str, Path]) -> Iterator[Engine]:
    model, tok, _ = load_model(tiny_dir, dtype="float32", device="cuda")
    engine = Engine(model, tok, EngineConfig(max_model_len=128, max_num_seqs=8, max_loras=2))
    engine.start()
    for name, path in tiny_adapters.items():
        engine.add_adapter(name, str(path), path)
    yield engine
    engine.shutdown()


def test_greedy_and_lora_rows_match_hf_and_peft_on_the_gpu(
    cuda_engine: Engine, tiny_dir: Path, tiny_adapters: dict[str, Path]
) -> None:
    from peft import PeftModel

    reference, tok, _ = load_model(tiny_dir, dtype="float32", device="cuda")
    prompts = [_ids(tok, p) for p in PROMPTS]
    assert [c.tokens for c in generate(cuda_engine, prompts, GREEDY)] == [
        _hf_greedy(reference, p, 12) for p in prompts
    ]
    prompt = prompts[0]
    expected: dict[str | None, list[int]] = {None: _hf_greedy(reference, prompt, 12)}
    for name, path in tiny_adapters.items():
        base, _, _ = load_model(tiny_dir, dtype="float32", device="cuda")
        expected[name] = _hf_greedy(PeftModel.from_pretrained(base, str(path)), prompt, 12)
    order: list[str | None] = [None, "alpha", "beta", "alpha", None, "beta"]
    mixed = generate(cuda_engine, [prompt] * len(order), GREEDY, order)
    assert [c.tokens for c in mixed] == [expected[a] for a in order]


@pytest.mark.slow
def test_a_server_process_on_cuda_answers_the_openai_sdk(tiny_dir: Path, tmp_path: Path) -> None:
    from openai import OpenAI

    with running_server(
        tmp_path / "server.log", "--served-model-name", "tiny", "--device", "cuda",
        model=str(tiny_dir),
    ) as url:  # fmt: skip
        client = OpenAI(base_url=f"{url}/v1", api_key="unused")
        answer = client.completions.create(
            model="tiny",
            prompt="Hello",
            max_tokens=6,
            temperature=0,
            extra_body={"ignore_eos": True},
        )
    assert answer.usage is not None and answer.usage.completion_tokens == 6
    assert "device cuda" in (tmp_path / "server.log").read_text()
