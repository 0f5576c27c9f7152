"""What tools mean for one request: the prompt's tools, the constraint, the parsing."""

from __future__ import annotations

from dataclasses import dataclass, field

from hearth_server.api.errors import ErrorResponse
from hearth_server.api.tools.constraint import forced_call_spec
from hearth_server.api.tools.parse import Event, Parsed, StreamParser, parse_output
from hearth_server.api.tools.spec import Tool, ToolCall, ToolChoice, Turn
from hearth_server.engine.structured import StructuredSpec


@dataclass
class ToolPlan:
    turns: list[Turn]
    tools: list[Tool] = field(default_factory=list)
    choice: ToolChoice = field(default_factory=lambda: ToolChoice("none"))

    @property
    def active(self) -> bool:
        """Whether the output is parsed for calls."""
        return self.choice.mode != "none" and bool(self.tools)

    @property
    def names(self) -> set[str]:
        allowed = self.choice.name
        return {t.name for t in self.tools if allowed in (None, t.name)}

    def __post_init__(self) -> None:
        # Built here, so that an unenforceable parameters schema is a ToolError at once.
        self.spec = forced_call_spec(self.tools, self.choice) if self.active else None

    def constraint(self) -> StructuredSpec | None:
        """What decoding must match: a forced call's schema, or nothing."""
        return self.spec

    def parse(self, text: str) -> Parsed:
        if not self.active:
            return Parsed(text)
        parsed = parse_output(text, self.names)
        parsed.calls = self.limit(parsed.calls)
        return parsed

    def limit(self, calls: list[ToolCall]) -> list[ToolCall]:
        """Without parallel calls only the first one counts."""
        return calls if self.choice.parallel else calls[:1]

    def stream_parser(self) -> PlanStream:
        return PlanStream(self)


class PlanStream:
    """A StreamParser that honours the plan's limit on calls."""

    def __init__(self, plan: ToolPlan) -> None:
        self.plan = plan
        self.parser = StreamParser(plan.names) if plan.active else None
        self.calls = 0

    def feed(self, text: str) -> list[Event]:
        if self.parser is None:
            return [text] if text else []
        return self._limit(self.parser.feed(text))

    def finish(self) -> list[Event]:
        return [] if self.parser is None else self._limit(self.parser.finish())

    def _limit(self, events: list[Event]) -> list[Event]:
        kept: list[Event] = []
        for event in events:
            if isinstance(event, ToolCall):
                if self.calls and not self.plan.choice.parallel:
                    continue
                self.calls += 1
            kept.append(event)
        return kept


def rename_param(err: ErrorResponse | None, old: str, new: str) -> ErrorResponse | None:
    """An engine refusal of the tools' constraint names ``tools``, not response_format."""
    if err is not None and err.error.param == old:
        err.error.param = new
    return err
