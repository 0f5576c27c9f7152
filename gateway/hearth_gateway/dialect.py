"""Which API family a route speaks: its errors, usage fields and stream events differ."""

from __future__ import annotations

import enum


class Dialect(enum.Enum):
    OPENAI = "openai"
    ANTHROPIC = "anthropic"
