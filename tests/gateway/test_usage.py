"""Model-name rewrite and usage extraction from whole bodies and from SSE streams (pure)."""

from __future__ import annotations

import json

from hearth_gateway.errors import Dialect
from hearth_gateway.usage import StreamRewriter, rewrite_body, upstream_body

SERVED = "accounts/acme/models/smol"
CLIENT = "acme/smol#acme/smol-dep"


def sse(*payloads: dict | str, event: str | None = None) -> bytes:
    out = b""
    for payload in payloads:
        data = payload if isinstance(payload, str) else json.dumps(payload)
        prefix = f"event: {event}\n" if event else ""
        out += f"{prefix}data: {data}\n\n".encode()
    return out


def chunk(content: str, finish: str | None = None) -> dict:
    return {
        "id": "c1",
        "model": SERVED,
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": finish}],
    }


USAGE_CHUNK = {
    "id": "c1",
    "model": SERVED,
    "choices": [],
    "usage": {
        "prompt_tokens": 18,
        "completion_tokens": 5,
        "total_tokens": 23,
        "prompt_tokens_details": {"cached_tokens": 4},
    },
}


def run(rewriter: StreamRewriter, data: bytes, piece: int) -> bytes:
    """Feed ``data`` in pieces of ``piece`` bytes (events split anywhere); then what the
    proxy sends once the usage record is written (the held end of the stream)."""
    out = b"".join(rewriter.feed(data[i : i + piece]) for i in range(0, len(data), piece))
    out += rewriter.flush()
    assert b"[DONE]" not in out and b"message_stop" not in out, "the end is held back"
    return out + rewriter.held


def test_openai_stream_rewrites_model_reads_usage_and_strips_the_unasked_chunk() -> None:
    stream = sse(chunk("Hel"), chunk("lo", "stop"), USAGE_CHUNK, "[DONE]")
    for piece in (1, 7, len(stream)):
        rewriter = StreamRewriter(Dialect.OPENAI, SERVED, CLIENT, keep_usage_chunk=False)
        out = run(rewriter, stream, piece)
        events = [e for e in out.decode().split("\n\n") if e]
        assert events[-1] == "data: [DONE]"
        bodies = [json.loads(e.removeprefix("data: ")) for e in events[:-1]]
        assert [b["model"] for b in bodies] == [CLIENT, CLIENT]
        assert all(b["choices"] for b in bodies), "the usage-only chunk is gone"
        usage = rewriter.usage
        assert (usage.prompt_tokens, usage.cached_tokens, usage.completion_tokens) == (18, 4, 5)


def test_openai_stream_keeps_the_usage_chunk_the_client_asked_for() -> None:
    rewriter = StreamRewriter(Dialect.OPENAI, SERVED, CLIENT, keep_usage_chunk=True)
    out = run(rewriter, sse(chunk("x", "stop"), USAGE_CHUNK, "[DONE]"), 5)
    assert out.count(b'"usage"') == 1 and SERVED.encode() not in out


def test_text_that_quotes_the_served_name_is_not_rewritten() -> None:
    sneaky = chunk(f'"model": "{SERVED}"')
    rewriter = StreamRewriter(Dialect.OPENAI, SERVED, CLIENT, keep_usage_chunk=False)
    body = json.loads(run(rewriter, sse(sneaky), 3).decode().removeprefix("data: "))
    assert body["model"] == CLIENT
    assert body["choices"][0]["delta"]["content"] == f'"model": "{SERVED}"'


def test_anthropic_stream_usage_from_message_start_and_delta() -> None:
    start = {
        "type": "message_start",
        "message": {
            "id": "m",
            "model": SERVED,
            "usage": {"input_tokens": 10, "cache_read_input_tokens": 2, "output_tokens": 0},
        },
    }
    delta = {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn"},
        "usage": {"output_tokens": 7},
    }
    stop = {"type": "message_stop"}
    data = (
        sse(start, event="message_start")
        + sse(delta, event="message_delta")
        + sse(stop, event="message_stop")
    )
    rewriter = StreamRewriter(Dialect.ANTHROPIC, SERVED, CLIENT, keep_usage_chunk=True)
    out = run(rewriter, data, 4)
    assert b"event: message_start" in out and CLIENT.encode() in out
    assert rewriter.held.startswith(b"event: message_stop")
    usage = rewriter.usage
    assert (usage.prompt_tokens, usage.cached_tokens, usage.completion_tokens) == (12, 2, 7)


def test_whole_bodies_and_the_upstream_request() -> None:
    raw = json.dumps(
        {"model": SERVED, "usage": {"prompt_tokens": 3, "completion_tokens": 2}}
    ).encode()
    body, usage = rewrite_body(raw, SERVED, CLIENT, Dialect.OPENAI)
    assert json.loads(body)["model"] == CLIENT and usage.total == 5
    anthropic = json.dumps(
        {"model": SERVED, "usage": {"input_tokens": 4, "output_tokens": 1}}
    ).encode()
    assert rewrite_body(anthropic, SERVED, CLIENT, Dialect.ANTHROPIC)[1].total == 5

    sent, keep = upstream_body({"model": CLIENT, "stream": True}, SERVED, Dialect.OPENAI)
    assert json.loads(sent) == {
        "model": SERVED,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    assert keep is False
    request = {"model": CLIENT, "stream": True, "stream_options": {"include_usage": True}}
    assert upstream_body(request, SERVED, Dialect.OPENAI)[1] is True
    sent, _ = upstream_body({"model": CLIENT, "stream": True}, SERVED, Dialect.ANTHROPIC)
    assert "stream_options" not in json.loads(sent)
