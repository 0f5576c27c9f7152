"""The operator's logs: one JSON object per line, on stderr.

python-json-logger does the encoding (kopf already depends on it, so it costs nothing and
escapes what a hand-rolled format string would not: quotes, newlines, non-text extras).
Every line has ``time`` (ISO 8601, UTC), ``level``, ``logger`` and ``message``; extras
passed with ``extra=`` become fields; kopf's per-object records carry the object as
``object``; an exception becomes ``exception: {type, message, traceback}``.
"""

from __future__ import annotations

import logging
import sys
import traceback
from typing import Any, TextIO

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

#: Extras kopf attaches to its records: its settings object and an internal flag are
#: dropped; the object reference is kept, as ``object``.
_KOPF_EXTRAS = ("settings", "k8s_skip", "k8s_ref")
_FIRST = ("time", "level", "logger", "message")


class JsonLinesFormatter(JsonFormatter):
    def __init__(self) -> None:
        super().__init__(
            "{levelname}{name}{message}",
            style="{",
            rename_fields={"levelname": "level", "name": "logger"},
            reserved_attrs=[*RESERVED_ATTRS, *_KOPF_EXTRAS],
            timestamp="time",
        )

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        super().add_fields(log_data, record, message_dict)
        log_data.pop("exc_info", None)  # replaced by the structured field below
        ref = getattr(record, "k8s_ref", None)
        if isinstance(ref, dict):
            log_data["object"] = {key: value for key, value in ref.items() if value}
        if record.exc_info and record.exc_info[1] is not None:
            kind, error, tb = record.exc_info
            log_data["exception"] = {
                "type": kind.__name__ if kind else type(error).__name__,
                "message": str(error),
                "traceback": "".join(traceback.format_exception(kind, error, tb)),
            }

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        # The fixed fields first, so a line reads well without a JSON viewer too.
        ordered = {key: log_data[key] for key in _FIRST if key in log_data}
        ordered.update((key, value) for key, value in log_data.items() if key not in ordered)
        return ordered


def configure_logging(level: str = "INFO", stream: TextIO | None = None) -> None:
    """Send every logger's records (kopf's included) to ``stream`` as JSON lines."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonLinesFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
