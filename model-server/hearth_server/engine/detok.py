"""Incremental detokenisation and stop-string handling for one output stream."""

from __future__ import annotations

from typing import Any


class IncrementalDecoder:
    """Emits text deltas token by token without re-decoding the whole output.

    Decodes a small window of recent tokens; text is released only once it no longer
    ends in an incomplete UTF-8 sequence (the replacement character).
    """

    def __init__(self, tokenizer: Any, skip_special_tokens: bool = True) -> None:
        self.tok = tokenizer
        self.skip = skip_special_tokens
        self.ids: list[int] = []
        self.prefix_offset = 0
        self.read_offset = 0

    def push(self, token_id: int) -> str:
        self.ids.append(token_id)
        prefix = self.tok.decode(
            self.ids[self.prefix_offset : self.read_offset], skip_special_tokens=self.skip
        )
        full = self.tok.decode(self.ids[self.prefix_offset :], skip_special_tokens=self.skip)
        if len(full) > len(prefix) and not full.endswith("\ufffd"):
            delta: str = full[len(prefix) :]
            self.prefix_offset = self.read_offset
            self.read_offset = len(self.ids)
            return delta
        return ""

    def flush(self) -> str:
        """Whatever is still held back (e.g. a trailing partial character) at the end."""
        prefix = self.tok.decode(
            self.ids[self.prefix_offset : self.read_offset], skip_special_tokens=self.skip
        )
        full = self.tok.decode(self.ids[self.prefix_offset :], skip_special_tokens=self.skip)
        self.prefix_offset = self.read_offset = len(self.ids)
        return full[len(prefix) :] if len(full) > len(prefix) else ""


class StopChecker:
    """Accumulates output text, cuts it at the first stop string and holds back a tail
    that could still become a stop string. The stop string itself is not returned."""

    def __init__(self, stops: list[str]) -> None:
        self.stops = stops
        self.hold = max((len(s) for s in stops), default=1) - 1
        self.text = ""
        self.sent = 0
        self.matched: str | None = None

    def feed(self, delta: str, final: bool = False) -> tuple[str, bool]:
        """Add ``delta``; return (text safe to emit now, hit_stop)."""
        search_from = max(0, len(self.text) - self.hold)
        self.text += delta
        hit = -1
        for s in self.stops:
            i = self.text.find(s, search_from)
            if i != -1 and (hit == -1 or i < hit):
                hit, self.matched = i, s
        if hit != -1:
            self.text = self.text[:hit]
            return self._release(len(self.text)), True
        limit = len(self.text) if final else max(self.sent, len(self.text) - self.hold)
        return self._release(limit), False

    def _release(self, upto: int) -> str:
        out = self.text[self.sent : upto] if upto > self.sent else ""
        self.sent = max(self.sent, upto)
        return out
