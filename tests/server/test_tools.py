"""Tool calls: the parser and prompt rendering (pure), and both dialects over the real
HTTP server on the tiny random llama. The random model cannot choose a call, so the HTTP
tests force one (tool_choice required / any / named) and check shapes, the constraint
and the stream against the non-streamed answer, never the model's judgement."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from hearth_server.api.tools.constraint import forced_call_schema
from hearth_server.api.tools.parse import StreamParser, parse_output
from hearth_server.api.tools.prompt import chat_messages, template_supports_tools
from hearth_server.api.tools.spec import Tool, ToolCall, ToolChoice, Turn
from tests.server.http_support import (
    LiveServer,
    anthropic_error,
    live_server,
    openai_error,
    sse_data,
    tiny_engine,
)

NAMES = {"get_weather", "get_time"}
# Enums and booleans only: the random model cannot run on forever inside a string.
WEATHER_PARAMS = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "enum": ["Paris", "Rome", "Oslo"]},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "detailed": {"type": "boolean"},
    },
    "required": ["city", "unit", "detailed"],
}
TIME_PARAMS = {
    "type": "object",
    "properties": {"zone": {"enum": ["UTC", "CET"]}},
    "required": ["zone"],
}
PARAMS = {"get_weather": WEATHER_PARAMS, "get_time": TIME_PARAMS}
OPENAI_TOOLS = [
    {"type": "function", "function": {"name": n, "description": f"{n} tool", "parameters": p}}
    for n, p in PARAMS.items()
]
ANTHROPIC_TOOLS = [
    {"name": n, "description": f"{n} tool", "input_schema": p} for n, p in PARAMS.items()
]
QUESTION = [{"role": "user", "content": "What is the weather in Paris?"}]


def _deep_schema(depth: int) -> dict[str, Any]:
    node: dict[str, Any] = {"type": "string"}
    for _ in range(depth):
        node = {"type": "object", "properties": {"a": node}}
    return node


# -- parsing -------------------------------------------------------------------------------


def test_parse_tagged_calls_and_surrounding_text() -> None:
    text = (
        'Let me check.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n'
        '</tool_call>\n<tool_call>{"name": "get_time", "arguments": "{\\"zone\\": \\"UTC\\"}"}'
        "</tool_call>"
    )
    parsed = parse_output(text, NAMES)
    assert parsed.text == "Let me check."
    assert [(c.name, json.loads(c.arguments)) for c in parsed.calls] == [
        ("get_weather", {"city": "Paris"}),
        ("get_time", {"zone": "UTC"}),  # arguments written as a JSON string are unwrapped
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"name": "get_time", "arguments": {"zone": "CET"}}', [("get_time", {"zone": "CET"})]),
        ('  [{"name": "get_time", "parameters": {}}] ', [("get_time", {})]),
        ('<tool_call>{"name": "get_time", "arguments": {}}', [("get_time", {})]),  # unclosed
    ],
)
def test_parse_bare_json_and_unclosed_calls(text: str, expected: list[Any]) -> None:
    parsed = parse_output(text, NAMES)
    assert parsed.text == ""
    assert [(c.name, json.loads(c.arguments)) for c in parsed.calls] == expected


@pytest.mark.parametrize(
    "text",
    [
        '<tool_call>{"name": "get_time", "arguments": {</tool_call>',  # malformed JSON
        '<tool_call>{"name": "launch_missiles", "arguments": {}}</tool_call>',  # unknown name
        '<tool_call>{"name": "get_time", "arguments": [1]}</tool_call>',  # not an object
        '{"name": "get_time"',
        "[]",
        '{"answer": 42}',
        "Plain text with a < and a <tool_ in it",
    ],
)
def test_what_is_not_a_call_stays_text_unchanged(text: str) -> None:
    parsed = parse_output(text, NAMES)
    assert parsed.calls == [] and parsed.text == text


STREAM_CASES = [
    'Sure.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Rome"}}\n</tool_call>\n',
    '<tool_call>{"name": "get_time", "arguments": {}}</tool_call>\n<tool_call>{"name": '
    '"get_weather", "arguments": {"city": "Oslo"}}</tool_call> and then some text',
    '[{"name": "get_time", "arguments": {"zone": "UTC"}}]',
    "No calls here, just a <b>tag</b> and trailing space  ",
    '<tool_call>{"name": "nope", "arguments": {}}</tool_call> kept as text',
    '{"name": "get_time", "arguments": {"zone": "UTC"}',  # truncated JSON: text
    '<tool_call>{"name": "get_time", "arguments": {"zone": "UTC"}}',  # unclosed, complete
]


@pytest.mark.parametrize("text", STREAM_CASES)
def test_stream_parser_agrees_with_the_whole_parse_however_split(text: str) -> None:
    whole = parse_output(text, NAMES)
    rng = random.Random(text)
    for trial in range(30):
        cuts = sorted(rng.sample(range(1, len(text)), min(len(text) - 1, trial % 8)))
        pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
        parser = StreamParser(NAMES)
        events = [e for p in pieces for e in parser.feed(p)] + parser.finish()
        calls = [e for e in events if isinstance(e, ToolCall)]
        streamed = "".join(e for e in events if isinstance(e, str))
        assert calls == whole.calls, pieces
        if whole.calls:  # whitespace at the seams of calls is not kept
            assert streamed.split() == whole.text.split(), pieces
        else:
            assert streamed == whole.text, pieces


def test_stream_parser_releases_text_before_the_end() -> None:
    parser = StreamParser(NAMES)
    assert parser.feed("Hello ") == ["Hello"]  # the space waits: a call might follow
    assert parser.feed("world <tool") == [" world"]  # "<tool" might open a call
    assert parser.feed("_call>") == []
    events = parser.feed('{"name": "get_time", "arguments": {}}</tool_call>')
    assert events == [ToolCall("get_time", "{}")]


# -- constraint schema ---------------------------------------------------------------------


def _tools() -> list[Tool]:
    return [Tool(n, "", p) for n, p in PARAMS.items()]


def test_forced_schema_accepts_only_calls_of_the_allowed_functions() -> None:
    weather = {
        "name": "get_weather",
        "arguments": {"city": "Oslo", "unit": "celsius", "detailed": True},
    }
    time_call = {"name": "get_time", "arguments": {"zone": "UTC"}}
    any_one = forced_call_schema(_tools(), ToolChoice("required", parallel=False))
    jsonschema.validate(weather, any_one)
    jsonschema.validate(time_call, any_one)
    many = forced_call_schema(_tools(), ToolChoice("required"))
    jsonschema.validate([weather, time_call], many)
    named = forced_call_schema(_tools(), ToolChoice("required", name="get_time", parallel=False))
    jsonschema.validate(time_call, named)
    for bad, schema in [
        (weather, named),  # not the named function
        ([], many),  # at least one call
        ({"name": "get_time", "arguments": {"zone": "PST"}}, any_one),  # arguments checked
        ({**time_call, "extra": 1}, any_one),
    ]:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)


def test_forced_schema_keeps_the_functions_own_definitions() -> None:
    params = {
        "type": "object",
        "properties": {"where": {"$ref": "#/$defs/place"}},
        "required": ["where"],
        "$defs": {"place": {"enum": ["home", "work"]}},
    }
    schema = forced_call_schema([Tool("go", "", params)], ToolChoice("required", parallel=False))
    jsonschema.validate({"name": "go", "arguments": {"where": "home"}}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"name": "go", "arguments": {"where": "moon"}}, schema)


# -- prompt rendering ----------------------------------------------------------------------

PLAIN_TEMPLATE = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
TOOLS_TEMPLATE = (
    "{% if tools %}TOOLS {{ tools | tojson }}\n{% endif %}{% for m in messages %}"
    "{{ m['role'] }}: {{ m['content'] }}{% for c in m.get('tool_calls', []) %}"
    " CALL {{ c['function']['name'] }} {{ c['function']['arguments'] | tojson }}"
    "{% endfor %}\n{% endfor %}"
)
HISTORY = [
    Turn("user", "Weather in Paris?"),
    Turn("assistant", "", [ToolCall("get_weather", '{"city": "Paris"}', "call_1")]),
    Turn("tool", "18 degrees", tool_call_id="call_1", name="get_weather"),
    Turn("user", "And tomorrow?"),
]


def test_template_support_for_tools_is_detected() -> None:
    assert template_supports_tools(TOOLS_TEMPLATE)
    assert not template_supports_tools(PLAIN_TEMPLATE)


def test_default_rendering_lists_tools_and_writes_history_as_blocks() -> None:
    messages, tools = chat_messages(PLAIN_TEMPLATE, HISTORY, _tools(), ToolChoice("auto"))
    assert tools is None
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert (
        '"name": "get_weather"' in messages[0]["content"]
        and "<tool_call>" in messages[0]["content"]
    )
    assert json.loads(messages[2]["content"].split("\n")[1]) == {
        "name": "get_weather",
        "arguments": {"city": "Paris"},
    }
    result, question = messages[3]["content"].rsplit("\n", 1)
    assert "<tool_response>" in result and "18 degrees" in result and question == "And tomorrow?"


def test_default_rendering_keeps_the_callers_system_prompt_and_none_hides_tools() -> None:
    turns = [Turn("system", "Be brief."), Turn("user", "hi")]
    messages, _ = chat_messages(PLAIN_TEMPLATE, turns, _tools(), ToolChoice("auto"))
    assert (
        messages[0]["content"].startswith("Be brief.\n\n") and "<tools>" in messages[0]["content"]
    )
    messages, _ = chat_messages(PLAIN_TEMPLATE, turns, _tools(), ToolChoice("none"))
    assert messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
    ]


def test_native_rendering_passes_tools_and_calls_to_the_template() -> None:
    messages, tools = chat_messages(TOOLS_TEMPLATE, HISTORY, _tools(), ToolChoice("auto"))
    assert tools is not None and [t["function"]["name"] for t in tools] == list(PARAMS)
    assert messages[1]["tool_calls"][0]["function"]["arguments"] == {"city": "Paris"}
    assert messages[2] == {
        "role": "tool",
        "content": "18 degrees",
        "tool_call_id": "call_1",
        "name": "get_weather",
    }


def test_transformers_renders_tools_and_calls_through_a_tools_template(tiny_dir: Path) -> None:
    from transformers import AutoTokenizer

    from hearth_server.api.openai.chat.serving import apply_chat_template

    tok = AutoTokenizer.from_pretrained(tiny_dir)
    tok.chat_template = TOOLS_TEMPLATE
    text = tok.decode(apply_chat_template(tok, HISTORY, _tools(), ToolChoice("auto")))
    assert text.startswith('TOOLS [{"type": "function", "function": {"name": "get_weather"')
    assert 'assistant:  CALL get_weather {"city": "Paris"}' in text
    assert "tool: 18 degrees" in text
    tok.chat_template = PLAIN_TEMPLATE
    text = tok.decode(apply_chat_template(tok, HISTORY, _tools(), ToolChoice("auto")))
    assert text.startswith("system: You can call functions.") and "<tool_response>" in text


def test_anthropic_blocks_close_text_before_a_call_and_reopen_after() -> None:
    from hearth_server.api.anthropic.messages.serving import ContentBlocks

    blocks = ContentBlocks()
    raw = [
        *blocks.text("Checking."),
        *blocks.call(ToolCall("get_time", '{"zone": "UTC"}')),
        *blocks.call(ToolCall("get_time", '{"zone": "CET"}')),
        *blocks.text("Done."),
        *blocks.close(),
    ]
    events = [json.loads(e.split("data: ", 1)[1]) for e in raw]
    shape = [(e["type"], e["index"]) for e in events]
    assert shape == [
        ("content_block_start", 0),
        ("content_block_delta", 0),
        ("content_block_stop", 0),
        ("content_block_start", 1),
        ("content_block_delta", 1),
        ("content_block_stop", 1),
        ("content_block_start", 2),
        ("content_block_delta", 2),
        ("content_block_stop", 2),
        ("content_block_start", 3),
        ("content_block_delta", 3),
        ("content_block_stop", 3),
    ]
    assert events[3]["content_block"]["input"] == {} and blocks.calls == 2
    assert events[4]["delta"] == {"type": "input_json_delta", "partial_json": '{"zone": "UTC"}'}


# -- over HTTP on the tiny llama -----------------------------------------------------------


@pytest.fixture(scope="module")
def server(tiny_dir: Path) -> Iterator[LiveServer]:
    engine = tiny_engine(tiny_dir, max_model_len=2048)  # the tool list is a long prompt
    try:
        with live_server(engine) as live:
            yield live
    finally:
        engine.shutdown()


def chat(**kw: Any) -> dict[str, Any]:
    body = {"model": "tiny", "messages": QUESTION, "tools": OPENAI_TOOLS, "temperature": 0}
    return {"max_tokens": 400, **body, **kw}


def message(**kw: Any) -> dict[str, Any]:
    body = {"model": "tiny", "messages": QUESTION, "tools": ANTHROPIC_TOOLS, "temperature": 0}
    return {"max_tokens": 400, **body, **kw}


def check_call(name: str, arguments: Any) -> None:
    assert name in PARAMS
    jsonschema.validate(arguments, PARAMS[name])


def streamed_openai_calls(events: list[Any]) -> tuple[list[dict[str, Any]], str]:
    """Tool calls assembled from chunks the way the SDKs do, checking OpenAI's shape:
    the first delta of a call has id, type and name, later ones only arguments."""
    calls: dict[int, dict[str, Any]] = {}
    finish = None
    for event in events[:-1]:
        choice = event["choices"][0]
        finish = choice["finish_reason"] or finish
        for delta in choice["delta"].get("tool_calls") or []:
            if delta["index"] not in calls:
                assert delta["id"].startswith("call_") and delta["type"] == "function"
                calls[delta["index"]] = {"name": delta["function"]["name"], "arguments": ""}
            else:
                assert "id" not in delta and "name" not in delta["function"]
            calls[delta["index"]]["arguments"] += delta["function"]["arguments"]
    assert events[-1] == "[DONE]" and finish is not None
    return [calls[i] for i in sorted(calls)], finish


@pytest.mark.parametrize(
    ("choice", "parallel", "names"),
    [
        ("required", False, NAMES),
        ({"type": "function", "function": {"name": "get_time"}}, True, {"get_time"}),
    ],
)
def test_openai_forced_calls_parse_match_the_schema_and_stream_the_same(
    server: LiveServer, choice: Any, parallel: bool, names: set[str]
) -> None:
    body = chat(tool_choice=choice, parallel_tool_calls=parallel)
    r = server.post("/v1/chat/completions", body)
    assert r.status_code == 200, r.text
    only = r.json()["choices"][0]
    assert only["finish_reason"] == "tool_calls", only
    msg = only["message"]
    assert msg["content"] is None and msg["role"] == "assistant"
    calls = msg["tool_calls"]
    assert len(calls) >= 1 and (parallel or len(calls) == 1)
    for call in calls:
        assert call["id"].startswith("call_") and call["type"] == "function"
        assert call["function"]["name"] in names
        check_call(call["function"]["name"], json.loads(call["function"]["arguments"]))

    events = sse_data(server.post("/v1/chat/completions", {**body, "stream": True}).text)
    streamed, finish = streamed_openai_calls(events)
    assert finish == "tool_calls"
    assert streamed == [c["function"] for c in calls]  # greedy: the same calls


def test_each_choice_streams_its_own_calls_with_every_tokens_logprobs(server: LiveServer) -> None:
    body = chat(tool_choice="required", parallel_tool_calls=False, n=2, seed=7, temperature=0.8)
    body.update(logprobs=True)
    plain = server.post("/v1/chat/completions", body).json()
    events = sse_data(server.post("/v1/chat/completions", {**body, "stream": True}).text)
    for choice in plain["choices"]:
        mine = [e for e in events[:-1] if e["choices"][0]["index"] == choice["index"]]
        calls, finish = streamed_openai_calls([*mine, "[DONE]"])
        assert finish == "tool_calls" == choice["finish_reason"]
        assert calls == [c["function"] for c in choice["message"]["tool_calls"]]
        # Tokens held back by the parser still report their logprobs, once each.
        streamed = [
            lp for e in mine for lp in (e["choices"][0]["logprobs"] or {}).get("content", [])
        ]
        assert streamed == choice["logprobs"]["content"]


def test_a_forced_call_cut_short_by_max_tokens_is_returned_as_text(server: LiveServer) -> None:
    # With parallel calls the random model never closes the list: the output is cut at
    # max_tokens, and the unfinished JSON comes back as text, streamed or not.
    body = chat(tool_choice="required", max_tokens=120)
    only = server.post("/v1/chat/completions", body).json()["choices"][0]
    assert only["finish_reason"] == "length" and "tool_calls" not in only["message"]
    assert only["message"]["content"].startswith('[{"name": "')
    events = sse_data(server.post("/v1/chat/completions", {**body, "stream": True}).text)
    text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events[:-1])
    assert text == only["message"]["content"]
    assert events[-2]["choices"][0]["finish_reason"] == "length"


def test_openai_tool_round_trip_history_is_accepted(server: LiveServer) -> None:
    first = server.post(
        "/v1/chat/completions", chat(tool_choice="required", parallel_tool_calls=False)
    )
    call = first.json()["choices"][0]["message"]["tool_calls"][0]
    history = [
        *QUESTION,
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": '{"temperature": 18}'},
    ]
    r = server.post(
        "/v1/chat/completions", chat(messages=history, tool_choice="none", max_tokens=5)
    )
    assert r.status_code == 200, r.text
    answer = r.json()["choices"][0]
    assert "tool_calls" not in answer["message"] and isinstance(answer["message"]["content"], str)


def test_anthropic_forced_tool_use_and_its_stream(server: LiveServer) -> None:
    body = message(tool_choice={"type": "tool", "name": "get_weather"})
    r = server.post("/v1/messages", body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["stop_reason"] == "tool_use"
    (block,) = [b for b in out["content"] if b["type"] == "tool_use"]
    assert block["id"].startswith("toolu_") and block["name"] == "get_weather"
    check_call(block["name"], block["input"])

    text = server.post("/v1/messages", {**body, "stream": True}).text
    events = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]
    kinds = [e["type"] for e in events]
    assert kinds == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    start, delta = events[1], events[2]
    assert start["content_block"] == {**block, "id": start["content_block"]["id"], "input": {}}
    assert delta["delta"]["type"] == "input_json_delta"
    assert json.loads(delta["delta"]["partial_json"]) == block["input"]
    assert events[4]["delta"]["stop_reason"] == "tool_use"


def test_anthropic_any_with_parallel_disabled_makes_one_call_and_takes_results(
    server: LiveServer,
) -> None:
    body = message(tool_choice={"type": "any", "disable_parallel_tool_use": True})
    out = server.post("/v1/messages", body).json()
    uses = [b for b in out["content"] if b["type"] == "tool_use"]
    assert len(uses) == 1
    history = [
        *QUESTION,
        {"role": "assistant", "content": out["content"]},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": uses[0]["id"], "content": "18 C"},
                {"type": "text", "text": "Thanks. Summarise."},
            ],
        },
    ]
    r = server.post("/v1/messages", message(messages=history, max_tokens=5))
    assert r.status_code == 200, r.text


def test_tool_choice_none_and_no_tools_answer_plain_text(server: LiveServer) -> None:
    for body in (chat(tool_choice="none", max_tokens=6), chat(tools=None, max_tokens=6)):
        out = server.post("/v1/chat/completions", body).json()["choices"][0]
        assert "tool_calls" not in out["message"] and out["finish_reason"] in ("stop", "length")


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"tools": [{"type": "retrieval"}]}, "tools.0.type"),
        ({"tools": ["get_weather"]}, "tools.0"),
        (
            {"tools": [{"type": "function", "function": {"description": "x"}}]},
            "tools.0.function.name",
        ),
        (
            {"tools": [{"type": "function", "function": {"name": "get weather!"}}]},
            "tools.0.function.name",
        ),
        (
            {"tools": [{"type": "function", "function": {"name": "x" * 65}}]},
            "tools.0.function.name",
        ),
        (
            {
                "tools": [
                    {"type": "function", "function": {"name": "f", "parameters": {"type": "array"}}}
                ]
            },
            "tools.0.function.parameters",
        ),
        (
            {"tools": [{"type": "function", "function": {"name": "f", "parameters": "{}"}}]},
            "tools.0.function.parameters",
        ),
        (
            {
                "tools": [
                    {"type": "function", "function": {"name": "f", "parameters": _deep_schema(400)}}
                ]
            },
            "tools.0.function.parameters",
        ),
        ({"tools": OPENAI_TOOLS + OPENAI_TOOLS[:1]}, "tools.2.name"),
        (
            {"tool_choice": {"type": "function", "function": {"name": "nope"}}},
            "tool_choice.function.name",
        ),
        ({"tool_choice": "sometimes"}, "tool_choice"),
        ({"tools": None, "tool_choice": "required"}, "tool_choice"),
        ({"parallel_tool_calls": "yes"}, "parallel_tool_calls"),
        (
            {"messages": [*QUESTION, {"role": "tool", "tool_call_id": "call_x", "content": "1"}]},
            "messages.1.tool_call_id",
        ),
        ({"messages": [{"role": "tool", "content": "1"}]}, "messages.0"),
        (
            {"tool_choice": "required", "response_format": {"type": "json_object"}},
            "response_format",
        ),
    ],
)
def test_bad_openai_tool_input_is_400_naming_the_field(
    server: LiveServer, change: dict[str, Any], param: str
) -> None:
    openai_error(server.post("/v1/chat/completions", chat(**change)), 400, param)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"tools": [{"name": "f"}]}, "tools.0.input_schema"),
        ({"tools": [{"name": "f g", "input_schema": {"type": "object"}}]}, "tools.0.name"),
        ({"tools": [{"type": "bash_20250124", "name": "bash"}]}, "tools.0.type"),
        ({"tool_choice": {"type": "tool", "name": "nope"}}, "tool_choice.name"),
        ({"tool_choice": {"type": "sometimes"}}, "tool_choice"),
        ({"tools": None, "tool_choice": {"type": "any"}}, "tool_choice"),
        (
            {
                "messages": [
                    *QUESTION,
                    {
                        "role": "user",
                        "content": [
                            {"type": "tool_result", "tool_use_id": "toolu_x", "content": "1"}
                        ],
                    },
                ]
            },
            "messages.1.content.0.tool_use_id",
        ),
        (
            {
                "tool_choice": {"type": "any"},
                "output_format": {"type": "json_schema", "schema": {}},
            },
            "output_format",
        ),
    ],
)
def test_bad_anthropic_tool_input_is_400_naming_the_field(
    server: LiveServer, change: dict[str, Any], named: str
) -> None:
    text = anthropic_error(
        server.post("/v1/messages", message(**change)), 400, "invalid_request_error"
    )
    assert named in text


def test_unenforceable_parameters_are_400_naming_tools(server: LiveServer) -> None:
    params = {"type": "object", "properties": {"s": {"type": "string", "format": "no-such-format"}}}
    tools = [{"type": "function", "function": {"name": "f", "parameters": params}}]
    openai_error(
        server.post("/v1/chat/completions", chat(tools=tools, tool_choice="required")), 400, "tools"
    )
    assert server.post("/v1/chat/completions", chat(max_tokens=3)).status_code == 200
