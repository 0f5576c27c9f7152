"""``--wait``: poll an object's ``state`` until it settles, with a progress line.

The API has no long-running operations: a create returns at once and the client polls
``state`` (Fireworks' convention, firectl's ``--wait``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

from ..client import ApiError, Json

Fetch = Callable[[], Json]
Describe = Callable[[Json], str]

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_S = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


class WaitFailed(Exception):
    """The object settled in a failed state; the message carries its status."""


class WaitTimedOut(Exception):
    """The object did not settle within ``--wait-timeout``."""


def parse_duration(text: str) -> float:
    """Seconds in a Go-style duration (``90s``, ``30m``, ``1h30m``) or a bare number."""
    stripped = text.strip()
    try:
        seconds = float(stripped)
    except ValueError:
        pieces = _DURATION.findall(stripped)
        if not pieces or "".join(a + u for a, u in pieces) != stripped:
            raise ValueError(
                f"duration {text!r}: use a number of seconds or e.g. 90s, 30m, 1h30m"
            ) from None
        seconds = sum(float(amount) * _UNIT_S[unit] for amount, unit in pieces)
    if seconds <= 0:
        raise ValueError(f"duration {text!r} must be positive")
    return seconds


@dataclass(frozen=True)
class Target:
    """What "settled" means for one kind: the states that end the wait."""

    what: str
    succeeded: frozenset[str]
    failed: frozenset[str]


def status_message(obj: Json) -> str:
    status = obj.get("status")
    if isinstance(status, dict):
        return str(status.get("message") or status.get("code") or "")
    return str(status or "")


def describe_state(obj: Json) -> str:
    """``STATE`` plus the status message, for progress lines of most kinds."""
    state = str(obj.get("state") or "STATE_UNSPECIFIED")
    message = status_message(obj)
    return f"{state}: {message}" if message else state


class ProgressLine:
    """A progress display on a stream: one line rewritten in place on a terminal, a new
    line per change otherwise (logs, pipes)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._tty = stream.isatty()
        self._last = ""

    def show(self, text: str) -> None:
        if text == self._last:
            return
        if self._tty:
            self._stream.write("\r" + text.ljust(len(self._last)))
        else:
            self._stream.write(text + "\n")
        self._stream.flush()
        self._last = text

    def close(self) -> None:
        if self._tty and self._last:
            self._stream.write("\n")
            self._stream.flush()


def wait_for(
    fetch: Fetch,
    target: Target,
    *,
    timeout_s: float,
    interval_s: float,
    progress: ProgressLine,
    describe: Describe = describe_state,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Json:
    """Poll ``fetch`` until the state is in ``target.succeeded`` (returns the object) or
    ``target.failed`` (raises :class:`WaitFailed`); :class:`WaitTimedOut` after the timeout."""
    deadline = clock() + timeout_s
    try:
        while True:
            obj = fetch()
            progress.show(f"{target.what}: {describe(obj)}")
            state = str(obj.get("state") or "")
            if state in target.succeeded:
                return obj
            if state in target.failed:
                raise WaitFailed(
                    f"{target.what} is {state}: {status_message(obj) or 'no reason given'}"
                )
            if clock() >= deadline:
                raise WaitTimedOut(
                    f"{target.what} is still {state or 'without a state'} after {timeout_s:g}s"
                )
            sleep(interval_s)
    finally:
        progress.close()


def wait_gone(
    fetch: Fetch,
    what: str,
    *,
    timeout_s: float,
    interval_s: float,
    progress: ProgressLine,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Poll until ``fetch`` answers 404 (or the object shows state ``DELETED``)."""
    deadline = clock() + timeout_s
    try:
        while True:
            try:
                obj = fetch()
            except ApiError as error:
                if error.status_code == 404:
                    progress.show(f"{what}: deleted")
                    return
                raise
            if obj.get("state") == "DELETED":
                progress.show(f"{what}: DELETED")
                return
            progress.show(f"{what}: {describe_state(obj)}")
            if clock() >= deadline:
                raise WaitTimedOut(f"{what} still exists after {timeout_s:g}s")
            sleep(interval_s)
    finally:
        progress.close()
