"""Kubernetes conditions, computed purely (the clock is passed in)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

MAX_MESSAGE = 4096


@dataclass(frozen=True)
class Cond:
    """A condition to set: type, True/False/Unknown, CamelCase reason, human message."""

    type: str
    status: bool | None
    reason: str
    message: str = ""

    @property
    def status_text(self) -> str:
        return {True: "True", False: "False", None: "Unknown"}[self.status]


def format_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def set_conditions(
    existing: list[dict[str, Any]] | None,
    updates: list[Cond],
    *,
    generation: int | None,
    now: datetime,
) -> list[dict[str, Any]]:
    """Merge ``updates`` into ``existing``.

    ``lastTransitionTime`` moves only when a condition's status flips, so watchers can tell
    how long something has been true. Conditions not mentioned are kept as they are.
    """
    by_type = {c["type"]: dict(c) for c in existing or []}
    order = [c["type"] for c in existing or []]
    for update in updates:
        previous = by_type.get(update.type)
        changed = previous is None or previous.get("status") != update.status_text
        entry: dict[str, Any] = {
            "type": update.type,
            "status": update.status_text,
            "reason": update.reason,
            "message": update.message[:MAX_MESSAGE],
            "lastTransitionTime": (
                format_time(now)
                if changed
                else (previous or {}).get("lastTransitionTime", format_time(now))
            ),
        }
        if generation is not None:
            entry["observedGeneration"] = generation
        if update.type not in by_type:
            order.append(update.type)
        by_type[update.type] = entry
    return [by_type[t] for t in order]
