"""Structured output (issue 15) on the tiny random llama: constrained decoding in mixed
batches against the unconstrained oracle, schema and grammar conformance, the 400s, and
the ends (grammar complete, max_tokens) of a constrained row.

The tiny model's weights are random, so whatever it emits is the grammar's doing: free
text from it is never JSON, constrained text always is.
"""

from __future__ import annotations

import concurrent.futures
import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import openai
import pytest

from hearth_server.api.structured import structured_from_anthropic, structured_from_openai
from hearth_server.engine.adapters import AdapterInfo
from hearth_server.engine.engine import Engine, Sequence
from hearth_server.engine.params import ParamError, SamplingParams
from hearth_server.engine.structured import StructuredSpec
from tests.server.conftest import Collected, generate
from tests.server.http_support import MODEL, LiveServer, live_server, openai_error, tiny_engine

PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 12},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "tags": {"type": "array", "items": {"enum": ["a", "b", "c"]}, "maxItems": 3},
        "pet": {"anyOf": [{"type": "null"}, {"$ref": "#/$defs/pet"}]},
    },
    "required": ["name", "age", "tags", "pet"],
    "$defs": {
        "pet": {
            "type": "object",
            "properties": {
                "kind": {"enum": ["cat", "dog"]},
                "legs": {"type": "integer", "minimum": 0, "maximum": 8},
            },
            "required": ["kind"],
        }
    },
}

PROMPTS = ["The capital of France is", "Hello world! How are", "def add(a, b):"]


def ids(engine: Engine, text: str) -> list[int]:
    return list(engine.tokenizer(text)["input_ids"])


def greedy(structured: StructuredSpec | None = None, max_tokens: int = 80) -> SamplingParams:
    # ignore_eos keeps unconstrained rows running to max_tokens, so they span the
    # constrained row's whole life in the batch.
    return SamplingParams(
        max_tokens=max_tokens, temperature=0.0, ignore_eos=structured is None, structured=structured
    )


def schema_spec(schema: dict[str, Any]) -> StructuredSpec:
    return StructuredSpec("json_schema", schema=schema)


def parsed(col: Collected, schema: dict[str, Any]) -> Any:
    assert col.final.finish_reason == "stop", (col.final, col.text)
    value = json.loads(col.text)
    jsonschema.validate(value, schema)
    return value


def _add_adapters(engine: Engine, adapters: dict[str, Path]) -> None:
    for name, path in adapters.items():
        info = AdapterInfo(name, str(path), path, 8, time.time())
        engine.adapters.add(info, engine.read_adapter(name, path))


# -- the engine ----------------------------------------------------------------------------


def test_mixed_batch_matches_each_row_alone(make_engine, tiny_adapters: dict[str, Path]) -> None:
    engine = make_engine()
    _add_adapters(engine, tiny_adapters)
    spec = schema_spec(PERSON)
    rows: list[tuple[str, str | None, StructuredSpec | None]] = [
        (PROMPTS[0], None, None),
        (PROMPTS[1], None, spec),
        (PROMPTS[2], "alpha", None),
        (PROMPTS[0], "beta", None),
        (PROMPTS[2], "alpha", spec),
        (PROMPTS[1], None, None),
    ]

    def run(batch: list[tuple[str, str | None, StructuredSpec | None]]) -> list[Collected]:
        cols = []
        for text, adapter, structured in batch:
            col = Collected()
            engine.submit(Sequence(ids(engine, text), greedy(structured), col.emit, adapter))
            cols.append(col)
        for col in cols:
            assert col.done.wait(60), "engine did not finish in time"
        return cols

    alone = [run([row])[0] for row in rows]
    together = run(rows)
    assert [c.tokens for c in together] == [c.tokens for c in alone]
    for (_, _, structured), col in zip(rows, together, strict=True):
        if structured is None:
            assert col.final.finish_reason == "length"
            with pytest.raises(ValueError):
                json.loads(col.text)  # the random model writes no JSON by itself
        else:
            parsed(col, PERSON)


@pytest.mark.parametrize(
    "schema",
    [
        PERSON,
        {
            "type": "array",
            "items": {"type": "integer", "maximum": 99},
            "minItems": 2,
            "maxItems": 4,
        },
        {"enum": ["red", "green", 7, None]},
        {"type": "string", "pattern": "^[a-z]{3}-[0-9]{2}$"},
        {"type": "number", "minimum": -5, "maximum": 5},
        {"oneOf": [{"type": "boolean"}, {"type": "string", "maxLength": 4}]},
    ],
    ids=["object", "array", "enum", "pattern", "number", "disjoint-oneOf"],
)
def test_greedy_and_sampled_outputs_validate(make_engine, schema: dict[str, Any]) -> None:
    engine = make_engine()
    prompts = [ids(engine, p) for p in PROMPTS]
    spec = schema_spec(schema)
    for col in generate(engine, prompts, greedy(spec)):
        parsed(col, schema)
    for seed in range(4):
        params = SamplingParams(max_tokens=110, temperature=1.0, seed=seed, structured=spec)
        parsed(generate(engine, prompts[:1], params)[0], schema)


def test_objects_with_properties_get_no_other_keys(make_engine) -> None:
    engine = make_engine()
    schema = {"type": "object", "properties": {"a": {"type": "boolean"}, "b": {"type": "null"}}}
    for seed in range(6):
        params = SamplingParams(max_tokens=40, temperature=1.5, seed=seed)
        params.structured = schema_spec(schema)
        value = parsed(generate(engine, [ids(engine, PROMPTS[seed % 3])], params)[0], schema)
        assert set(value) <= {"a", "b"}


def test_json_object_is_an_object(make_engine) -> None:
    engine = make_engine()
    for seed in range(3):
        params = SamplingParams(max_tokens=60, temperature=1.0, seed=seed)
        params.structured = StructuredSpec("json_object")
        col = generate(engine, [ids(engine, PROMPTS[0])], params)[0]
        assert isinstance(parsed(col, {"type": "object"}), dict)


def test_grammar_output_is_in_the_language(make_engine) -> None:
    engine = make_engine()
    grammar = textwrap.dedent(
        """
        root   ::= answer " " code
        answer ::= "yes" | "no" | "maybe"
        code   ::= [A-Z] [0-9] [0-9]
        """
    )
    spec = StructuredSpec("grammar", grammar=grammar)
    outputs = set()
    for seed in range(5):
        params = SamplingParams(max_tokens=20, temperature=1.0, seed=seed, structured=spec)
        col = generate(engine, [ids(engine, PROMPTS[seed % 3])], params)[0]
        assert col.final.finish_reason == "stop"
        answer, code = col.text.split(" ")
        assert answer in ("yes", "no", "maybe"), col.text
        assert len(code) == 3 and code[0].isupper() and code[1:].isdigit(), col.text
        outputs.add(col.text)
    assert len(outputs) > 1, "sampling within the grammar should still vary"


def test_eos_ends_an_open_ended_value_only_once_it_is_complete(make_engine) -> None:
    """An integer can always take another digit: the row ends by EOS, which the mask
    allows only once the digits so far already form a valid integer."""
    engine = make_engine()
    spec = schema_spec({"type": "integer"})
    reasons = []
    for seed in range(8):
        params = SamplingParams(max_tokens=30, temperature=1.0, seed=seed, structured=spec)
        col = generate(engine, [ids(engine, PROMPTS[0])], params)[0]
        reasons.append(col.final.finish_reason)
        if col.final.finish_reason == "stop":
            assert col.final.matched_stop in engine.eos_ids
            assert isinstance(json.loads(col.text), int)
        else:
            assert col.final.finish_reason == "length"
            assert col.text.lstrip("-").isdigit(), col.text
    assert "stop" in reasons, reasons


def test_a_grammar_that_cannot_finish_in_max_tokens_ends_at_length(make_engine) -> None:
    engine = make_engine()
    spec = schema_spec({"type": "string", "minLength": 40})
    col = generate(engine, [ids(engine, PROMPTS[0])], greedy(spec, max_tokens=6))[0]
    assert col.final.finish_reason == "length"
    assert len(col.tokens) == 6 and col.text.startswith('"')
    # the engine goes on serving
    after = generate(engine, [ids(engine, PROMPTS[1])], greedy(schema_spec({"type": "boolean"})))
    assert json.loads(after[0].text) in (True, False)


def test_engine_refuses_a_spec_that_cannot_compile(make_engine) -> None:
    engine = make_engine()
    bad = StructuredSpec("grammar", grammar='root ::= "a" missing')
    seq = Sequence(ids(engine, PROMPTS[0]), greedy(bad), Collected().emit)
    with pytest.raises(ParamError) as err:
        engine.submit(seq)
    assert err.value.param == "response_format" and "missing" in str(err.value)
    assert engine.alive


def test_unconstrained_serving_never_loads_the_grammar_library(tiny_dir: Path) -> None:
    """Kept off the hot path: no import and no matcher unless a request asks for one."""
    code = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from tests.server.conftest import generate, load_tiny
        from hearth_server.engine.engine import Engine, EngineConfig
        from hearth_server.engine.params import SamplingParams
        model, tok = load_tiny(Path({str(tiny_dir)!r}))
        engine = Engine(model, tok, EngineConfig(max_model_len=64))
        engine.start()
        generate(engine, [[5, 6, 7]], SamplingParams(max_tokens=4))
        engine.shutdown()
        assert "llguidance" not in sys.modules, "llguidance was imported"
        """
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr[-2000:]


def test_gguf_style_tokenizers_are_read_byte_level(tiny_dir: Path) -> None:
    """Tokenizers converted from GGUF decode through a chain ending in ByteLevel; read
    naively, llguidance took their space tokens (``Ġ``) literally and allowed none."""
    from tokenizers import decoders  # type: ignore[import-untyped]
    from transformers import AutoTokenizer

    from hearth_server.engine.structured import GrammarCache

    tok = AutoTokenizer.from_pretrained(tiny_dir)
    tok.backend_tokenizer.decoder = decoders.Sequence(
        [
            decoders.ByteFallback(),
            decoders.Fuse(),
            decoders.Replace("\u2581", " "),
            decoders.ByteLevel(),
        ]
    )
    cache = GrammarCache(tok, len(tok), [tok.eos_token_id])
    constraint = cache.constraint(StructuredSpec("grammar", grammar='root ::= "a b\\nc"'))
    out: list[int] = []
    while True:
        allowed = constraint.allowed().nonzero()[0].tolist()
        assert allowed, f"the grammar allowed no token after {tok.decode(out)!r}"
        out.append(allowed[0])
        if constraint.advance(allowed[0]):
            break
    assert tok.decode(out) == "a b\nc"


# -- the wire forms --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        ({"type": "text"}, None),
        ({"type": "json_object"}, "json_object"),
        ({"type": "json_object", "schema": {"type": "object"}}, "json_schema"),
        ({"type": "json_schema", "json_schema": {"name": "p", "schema": PERSON}}, "json_schema"),
        ({"type": "json_schema", "schema": PERSON}, "json_schema"),
        ({"type": "grammar", "grammar": 'root ::= "a"'}, "grammar"),
    ],
)
def test_openai_forms(body: dict[str, Any], kind: str | None) -> None:
    spec = structured_from_openai(body)
    assert (spec.kind if spec else None) == kind


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ("json", "must be an object"),
        ({"type": "xml"}, "response_format.type must be one of"),
        ({"type": "json_schema"}, "response_format.json_schema must be an object"),
        ({"type": "json_schema", "json_schema": {"name": "p"}}, "schema is required"),
        ({"type": "json_schema", "json_schema": {"schema": []}}, "JSON Schema object"),
        ({"type": "json_schema", "json_schema": {"schema": {}, "strict": "y"}}, "strict"),
        ({"type": "grammar"}, "response_format.grammar must be a non-empty"),
        ({"type": "json_schema", "schema": {"type": "array", "uniqueItems": True}}, "uniqueItems"),
        ({"type": "json_schema", "schema": {"not": {"type": "string"}}}, "keyword: not"),
        ({"type": "json_schema", "schema": {"type": "string", "format": "zip"}}, "format: zip"),
        ({"type": "json_schema", "schema": {"type": "strng"}}, "strng"),
        (
            {"type": "json_schema", "schema": {"oneOf": [{"type": "number"}, {"type": "integer"}]}},
            "oneOf with overlapping branches",
        ),
        ({"type": "grammar", "grammar": "root ::= [a-"}, "invalid grammar"),
    ],
)
def test_openai_refusals_name_the_field_and_feature(body: Any, says: str) -> None:
    with pytest.raises(ParamError) as err:
        structured_from_openai(body)
    assert err.value.param == "response_format"
    assert says in str(err.value)


def test_deep_schemas_are_refused_before_anything_recurses() -> None:
    schema: dict[str, Any] = {"type": "integer"}
    for _ in range(5000):
        schema = {"type": "array", "items": schema}
    with pytest.raises(ParamError, match="nested deeper than"):
        structured_from_openai({"type": "json_schema", "schema": schema})


def test_anthropic_form() -> None:
    spec = structured_from_anthropic({"type": "json_schema", "schema": PERSON})
    assert spec is not None and spec.schema == PERSON
    with pytest.raises(ParamError) as err:
        structured_from_anthropic({"type": "json_schema", "schema": {"contains": {}}})
    assert err.value.param == "output_format" and "contains" in str(err.value)
    with pytest.raises(ParamError, match=r"output_config\.format\.type"):
        structured_from_anthropic({"type": "json"}, field="output_config.format")


# -- through the HTTP server (the official openai SDK) ---------------------------------------


@pytest.fixture(scope="module")
def server(tiny_dir: Path) -> Iterator[LiveServer]:
    engine = tiny_engine(tiny_dir)
    try:
        with live_server(engine) as s:
            yield s
    finally:
        engine.shutdown()


@pytest.fixture(scope="module")
def client(server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)


def test_completions_take_a_json_schema(client: openai.OpenAI) -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON}}
    out = client.completions.create(
        model=MODEL,
        prompt=PROMPTS[0],
        max_tokens=80,
        temperature=0,
        n=2,
        extra_body={"response_format": fmt},
    )
    for choice in out.choices:
        assert choice.finish_reason == "stop"
        jsonschema.validate(json.loads(choice.text), PERSON)


def test_completions_stream_a_grammar(client: openai.OpenAI) -> None:
    fmt = {"type": "grammar", "grammar": 'root ::= "ok " [0-9] [0-9] [0-9]'}
    chunks = client.completions.create(
        model=MODEL,
        prompt=PROMPTS[1],
        max_tokens=20,
        stream=True,
        seed=3,
        extra_body={"response_format": fmt},
    )
    pieces = list(chunks)
    text = "".join(c.choices[0].text for c in pieces if c.choices)
    assert text.startswith("ok ") and len(text) == 6 and text[3:].isdigit(), text
    assert pieces[-1].choices[0].finish_reason == "stop"


@pytest.mark.parametrize(
    ("fmt", "says"),
    [
        ({"type": "json_schema", "schema": {"type": "string", "not": {}}}, "keyword: not"),
        ({"type": "grammar", "grammar": "root ::= ( 'unclosed"}, "invalid grammar"),
        ({"type": "grammar", "grammar": 'root ::= "a" | b'}, "'b' not found"),
        ({"type": "sql"}, "type must be one of"),
    ],
)
def test_completions_refusals_are_400_naming_response_format(
    server: LiveServer, client: openai.OpenAI, fmt: dict[str, Any], says: str
) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client.completions.create(
            model=MODEL, prompt="Hi", max_tokens=4, extra_body={"response_format": fmt}
        )
    body = err.value.body
    assert isinstance(body, dict) and body["param"] == "response_format", body
    assert says in body["message"]
    ok = server.post("/v1/completions", {"model": MODEL, "prompt": "Hi", "max_tokens": 2})
    assert ok.status_code == 200 and server.state.engine is not None and server.state.engine.alive


def test_completions_constraint_that_cannot_finish_is_length(server: LiveServer) -> None:
    fmt = {"type": "json_schema", "schema": {"type": "array", "minItems": 30}}
    body = {"model": MODEL, "prompt": "Hi", "max_tokens": 5, "response_format": fmt}
    resp = server.post("/v1/completions", body)
    assert resp.status_code == 200, resp.text
    assert resp.json()["choices"][0]["finish_reason"] == "length"
    bad = server.post("/v1/completions", {**body, "response_format": {"type": 1}})
    openai_error(bad, 400, "response_format")


# -- the real SmolLM2 --------------------------------------------------------------------------

WEATHER = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 30},
        "temperature_c": {"type": "integer", "minimum": -60, "maximum": 60},
        "sky": {"enum": ["sunny", "cloudy", "rain", "snow"]},
        "wind": {"anyOf": [{"type": "null"}, {"type": "number", "minimum": 0, "maximum": 200}]},
    },
    "required": ["city", "temperature_c", "sky", "wind"],
}


@pytest.fixture(scope="module")
def smollm2() -> Iterator[LiveServer]:
    from hearth_server.engine.engine import EngineConfig
    from hearth_server.models import resolve_model
    from hearth_server.models.loading import load_model

    model, tok, _ = load_model(resolve_model("builtin://smollm2-135m-instruct").path)
    engine = Engine(model, tok, EngineConfig(max_model_len=512, max_num_seqs=8))
    engine.start()
    try:
        with live_server(engine) as s:
            yield s
    finally:
        engine.shutdown()


@pytest.mark.slow
def test_smollm2_twenty_seeded_json_schema_requests_validate(smollm2: LiveServer) -> None:
    client = openai.OpenAI(base_url=f"{smollm2.url}/v1", api_key="unused", max_retries=0)
    fmt = {"type": "json_schema", "json_schema": {"name": "weather", "schema": WEATHER}}
    prompt = "Report today's weather in Paris as JSON.\n"

    def one(seed: int) -> Any:
        out = client.completions.create(
            model=MODEL,
            prompt=prompt,
            max_tokens=120,
            temperature=0.8,
            seed=seed,
            extra_body={"response_format": fmt},
        )
        return out.choices[0]

    with concurrent.futures.ThreadPoolExecutor(8) as pool:  # one batch, as clients send them
        choices = list(pool.map(one, range(20)))
    texts = set()
    for choice in choices:
        assert choice.finish_reason == "stop", choice
        jsonschema.validate(json.loads(choice.text), WEATHER)
        texts.add(choice.text)
    assert len(texts) > 1, "seeded sampling should vary within the schema"
