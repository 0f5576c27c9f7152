"""Token usage out of responses, and the model-name rewrite, without buffering streams.

Pure: bytes in, bytes and counts out. :class:`StreamRewriter` takes the server's SSE
bytes as they arrive and gives back whole events, each passed on at once:

* the model name the server knows is replaced by the one the client sent;
* usage is read from the events that carry it (OpenAI: the chunk with ``usage``, which the
  gateway asks for with ``stream_options.include_usage``; Anthropic: ``message_start``
  for input tokens, ``message_delta`` for output tokens);
* the usage-only chunk is dropped when the client did not ask for it.

Only events containing ``"usage"`` are parsed as JSON; the rest are passed on as bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .dialect import Dialect

Obj = dict[str, Any]
#: An event longer than this is passed on unparsed rather than held.
MAX_EVENT_BYTES = 1 << 20


@dataclass
class Usage:
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    seen: bool = False

    @property
    def total(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def read_openai_usage(usage: Obj, into: Usage) -> None:
    into.prompt_tokens = _int(usage.get("prompt_tokens"))
    into.completion_tokens = _int(usage.get("completion_tokens"))
    details = usage.get("prompt_tokens_details") or {}
    into.cached_tokens = _int(details.get("cached_tokens")) if isinstance(details, dict) else 0
    into.seen = True


def read_anthropic_usage(usage: Obj, into: Usage, *, start: bool) -> None:
    """``input_tokens`` excludes cache reads (``cache_read_input_tokens``); the ledger's
    prompt tokens include them, as OpenAI's do."""
    if start or "input_tokens" in usage:
        cached = _int(usage.get("cache_read_input_tokens"))
        into.prompt_tokens = _int(usage.get("input_tokens")) + cached
        into.cached_tokens = cached
    if "output_tokens" in usage:
        into.completion_tokens = _int(usage.get("output_tokens"))
    into.seen = True


def upstream_body(body: dict[str, Any], served_name: str, dialect: Dialect) -> tuple[bytes, bool]:
    """The body for the server (its model name; usage asked for on OpenAI streams) and
    whether the client itself asked for the usage chunk."""
    forwarded = dict(body)
    forwarded["model"] = served_name
    keep_usage = True
    if dialect is Dialect.OPENAI and body.get("stream") is True:
        options = body.get("stream_options")
        if options is None or isinstance(options, dict):
            options = dict(options or {})
            keep_usage = options.get("include_usage") is True
            options["include_usage"] = True
            forwarded["stream_options"] = options
    return json.dumps(forwarded, ensure_ascii=False).encode(), keep_usage


def usage_of_body(body: Obj, dialect: Dialect) -> Usage:
    usage = Usage()
    found = body.get("usage")
    if isinstance(found, dict):
        if dialect is Dialect.ANTHROPIC:
            read_anthropic_usage(found, usage, start=True)
        else:
            read_openai_usage(found, usage)
    return usage


def rewrite_body(
    raw: bytes, served_name: str, client_model: str, dialect: Dialect
) -> tuple[bytes, Usage]:
    """A whole (non-streamed) JSON response: the client's model name put back, its usage."""
    try:
        body = json.loads(raw)
    except ValueError:
        return raw, Usage()
    if not isinstance(body, dict):
        return raw, Usage()
    if body.get("model") == served_name:
        body["model"] = client_model
    return json.dumps(body, ensure_ascii=False).encode(), usage_of_body(body, dialect)


class StreamRewriter:
    def __init__(
        self, dialect: Dialect, served_name: str, client_model: str, *, keep_usage_chunk: bool
    ) -> None:
        self.dialect = dialect
        self.keep_usage_chunk = keep_usage_chunk
        self.usage = Usage()
        #: The end of the stream, held back until the usage record is durable.
        self.held = b""
        self._buffer = b""
        served = json.dumps(served_name).encode()
        client = json.dumps(client_model).encode()
        self._replacements = [
            (b'"model": ' + served, b'"model": ' + client),
            (b'"model":' + served, b'"model":' + client),
        ]

    def feed(self, data: bytes) -> bytes:
        """The complete events in what arrived so far, rewritten; the rest waits. From the
        stream's end event on (OpenAI ``[DONE]``, Anthropic ``message_stop``) events are
        kept in ``held``: the caller sends them once the answer's usage is recorded."""
        self._buffer += data
        out = []
        while True:
            end = self._buffer.find(b"\n\n")
            if end < 0:
                if len(self._buffer) > MAX_EVENT_BYTES:  # not SSE as we know it: pass it on
                    out.append(self._buffer)
                    self._buffer = b""
                break
            event, self._buffer = self._buffer[: end + 2], self._buffer[end + 2 :]
            self._route(self._event(event), out)
        return b"".join(out)

    def flush(self) -> bytes:
        rest, self._buffer = self._buffer, b""
        out: list[bytes] = []
        if rest:
            self._route(self._event(rest), out)
        return b"".join(out)

    def _route(self, event: bytes, out: list[bytes]) -> None:
        if not self.held and not _is_end_event(event, self.dialect):
            out.append(event)
        else:
            self.held += event

    def _event(self, event: bytes) -> bytes:
        for old, new in self._replacements:
            if old in event:
                event = event.replace(old, new)
        if b'"usage"' not in event:
            return event
        payload = _data_of(event)
        if payload is None:
            return event
        if self.dialect is Dialect.ANTHROPIC:
            kind = payload.get("type")
            if kind == "message_start" and isinstance(payload.get("message"), dict):
                found = payload["message"].get("usage")
                if isinstance(found, dict):
                    read_anthropic_usage(found, self.usage, start=True)
            elif kind == "message_delta" and isinstance(payload.get("usage"), dict):
                read_anthropic_usage(payload["usage"], self.usage, start=False)
            return event
        found = payload.get("usage")
        if isinstance(found, dict):
            read_openai_usage(found, self.usage)
            if not self.keep_usage_chunk and payload.get("choices") == []:
                return b""
        return event


def _is_end_event(event: bytes, dialect: Dialect) -> bool:
    """Whether ``event`` is the one that tells the client the answer is complete."""
    end = b"event: message_stop" if dialect is Dialect.ANTHROPIC else b"data: [DONE]"
    return any(line.strip() == end for line in event.splitlines())


def _data_of(event: bytes) -> Obj | None:
    lines = [line[5:].strip() for line in event.splitlines() if line.startswith(b"data:")]
    if not lines:
        return None
    try:
        payload = json.loads(b"\n".join(lines))
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None
