"""The model's output back into tool calls, whole or as it streams.

Calls are ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` blocks (the
default prompt's format, also Hermes' and Qwen's), or an output that is nothing but a
JSON call or a JSON list of calls (what constrained decoding produces, and what Llama 3
style templates ask for; ``parameters`` is accepted for ``arguments``). Anything that
does not parse as a call of a known function stays text: a malformed call is returned
to the client as the model wrote it, never an error.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any, Literal

from hearth_server.api.tools.spec import ToolCall

OPEN = "<tool_call>"
CLOSE = "</tool_call>"


@dataclass
class Parsed:
    text: str
    calls: list[ToolCall] = field(default_factory=list)


def call_from_value(value: Any, names: Collection[str]) -> ToolCall | None:
    if not isinstance(value, dict):
        return None
    name = value.get("name")
    args = value.get("arguments", value.get("parameters", {}))
    if isinstance(args, str):  # some models write the arguments as a JSON string
        try:
            args = json.loads(args)
        except ValueError:
            return None
    if not isinstance(name, str) or name not in names or not isinstance(args, dict):
        return None
    return ToolCall(name=name, arguments=json.dumps(args, ensure_ascii=False))


def calls_from_json(text: str, names: Collection[str]) -> list[ToolCall] | None:
    """``text`` as one JSON call or a non-empty list of calls; None when it is not."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    items = value if isinstance(value, list) else [value]
    calls = [call_from_value(v, names) for v in items]
    if not calls or any(c is None for c in calls):
        return None
    return [c for c in calls if c is not None]


def parse_output(text: str, names: Collection[str]) -> Parsed:
    """Split a finished output into text and calls."""
    stripped = text.strip()
    if stripped[:1] in ("{", "["):
        whole = calls_from_json(stripped, names)
        if whole:
            return Parsed("", whole)
    pieces: list[str] = []
    calls: list[ToolCall] = []
    pos = 0
    while (start := text.find(OPEN, pos)) >= 0:
        end = text.find(CLOSE, start)
        body_end, after = (len(text), len(text)) if end < 0 else (end, end + len(CLOSE))
        found = calls_from_json(text[start + len(OPEN) : body_end].strip(), names)
        if found is None:
            pieces.append(text[pos:after])
        else:
            pieces.append(text[pos:start])
            calls.extend(found)
        pos = after
    pieces.append(text[pos:])
    joined = "".join(pieces)
    return Parsed(joined.strip() if calls else joined, calls)


def _partial_open(text: str) -> int:
    """Length of the longest suffix of ``text`` that could begin ``<tool_call>``."""
    for size in range(min(len(OPEN) - 1, len(text)), 0, -1):
        if OPEN.startswith(text[-size:]):
            return size
    return 0


Event = str | ToolCall


class StreamParser:
    """The same split as ``parse_output``, fed text deltas: text is released as soon as
    it cannot be part of a call, each call once it is complete. An output that opens
    with ``{`` or ``[`` may be a bare JSON call, so it is held until the end."""

    def __init__(self, names: Collection[str]) -> None:
        self.names = names
        self.mode: Literal["start", "text", "call", "json"] = "start"
        self.buffer = ""
        self.held_space = ""  # trailing whitespace: dropped if a call follows
        self.saw_call = False
        self.strip_next = False

    def feed(self, text: str) -> list[Event]:
        self.buffer += text
        events: list[Event] = []
        while True:
            if self.mode == "start":
                head = self.buffer.lstrip()
                if not head:
                    return events
                self.mode = "json" if head[0] in "{[" else "text"
            if self.mode == "json":
                return events
            if self.mode == "text":
                start = self.buffer.find(OPEN)
                if start < 0:
                    keep = _partial_open(self.buffer)
                    self._text(self.buffer[: len(self.buffer) - keep], events)
                    self.buffer = self.buffer[len(self.buffer) - keep :]
                    return events
                self._text(self.buffer[:start], events)
                self.held_space = ""
                self.buffer = self.buffer[start:]
                self.mode = "call"
            end = self.buffer.find(CLOSE)
            if end < 0:
                return events
            self._close_call(self.buffer[: end + len(CLOSE)], end, events)
            self.buffer = self.buffer[end + len(CLOSE) :]
            self.mode = "text"

    def finish(self) -> list[Event]:
        events: list[Event] = []
        if self.mode == "json":
            parsed = parse_output(self.buffer, self.names)
            self._text(parsed.text, events)
            self.saw_call = self.saw_call or bool(parsed.calls)
            events.extend(parsed.calls)
        elif self.mode == "call":
            self._close_call(self.buffer, len(self.buffer), events)
        else:
            self._text(self.buffer, events)
        if self.held_space and not self.saw_call:
            events.append(self.held_space)
        self.buffer = self.held_space = ""
        return events

    def _close_call(self, block: str, body_end: int, events: list[Event]) -> None:
        found = calls_from_json(block[len(OPEN) : body_end].strip(), self.names)
        if found is None:
            self._text(block, events)
            return
        self.saw_call = True
        self.strip_next = True
        events.extend(found)

    def _text(self, text: str, events: list[Event]) -> None:
        if self.strip_next:  # no whitespace right after a call
            text = text.lstrip()
            if not text:
                return
            self.strip_next = False
        body = text.rstrip()
        if body:
            events.append(self.held_space + body)
            self.held_space = ""
        self.held_space += text[len(body) :]
