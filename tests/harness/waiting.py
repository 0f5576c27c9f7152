"""Bounded waiting: poll a condition until it holds or a deadline passes.

Tests never sleep a fixed time and never assert on durations; they wait for a state
with :func:`eventually` and fail with the last observed value when it never comes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class ConditionTimeout(AssertionError):
    pass


def eventually(
    fn: Callable[[], T | None],
    *,
    timeout: float = 10.0,
    interval: float = 0.05,
    message: str = "",
) -> T:
    """Call ``fn`` until it returns a truthy value (returned) or ``timeout`` passes.

    Exceptions raised by ``fn`` count as "not yet" (an object not created yet is a 404);
    the last one is chained to the final error to explain what was seen.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    last_exc: BaseException | None = None
    while True:
        try:
            result = fn()
        except Exception as exc:
            last_exc = exc
        else:
            last_exc = None
            if result:
                return result
            last = result
        if time.monotonic() >= deadline:
            raise ConditionTimeout(
                f"condition not met within {timeout}s: {message or fn!r}; last value: {last!r}"
            ) from last_exc
        time.sleep(interval)
