"""The sliding-window semantics every rate limiter backend implements, as pure functions.

A bucket is a log of (time, amount) entries. An entry counts while now < time + window_s;
`used` is the sum of the amounts that count.

- hit(limit, window_s, amount) is allowed when used < limit and used + amount <= limit;
  only then is (now, amount) added (nothing is added for amount 0, a peek).
- charge(window_s, amount) adds (now, amount) unconditionally, so used may pass the limit;
  hits are then refused until enough of it has left the window.
- Decision.remaining is limit - used after the call, never below 0.
- Decision.reset_after_s is 0 for an allowed hit. For a refused one it is how long until
  the same hit would be allowed if nothing else happened meanwhile: until enough of the
  oldest entries leave the window. A hit that can never be allowed (amount > limit, or
  limit 0) gets the whole window.

The window is exact, not an approximation: every entry is kept until it leaves.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_after_s: float  # seconds until enough of the window frees up (for retry-after)


def check_hit(limit: int, window_s: float, amount: int) -> None:
    """Raises ValueError naming each argument out of range."""
    problems = []
    if limit < 0:
        problems.append(f"limit: must be >= 0, got {limit}")
    problems += _window_and_amount_problems(window_s, amount)
    if problems:
        raise ValueError("rate limit: " + "; ".join(problems))


def check_charge(window_s: float, amount: int) -> None:
    problems = _window_and_amount_problems(window_s, amount)
    if problems:
        raise ValueError("rate limit: " + "; ".join(problems))


def _window_and_amount_problems(window_s: float, amount: int) -> list[str]:
    problems = []
    if not (window_s > 0 and math.isfinite(window_s)):
        problems.append(f"window_s: must be a positive number of seconds, got {window_s}")
    if amount < 0:
        problems.append(f"amount: must be >= 0, got {amount}")
    return problems


def fits(used: int, limit: int, amount: int) -> bool:
    """Whether a hit of `amount` is allowed when `used` of `limit` is taken."""
    return used < limit and used + amount <= limit


def refused(
    entries: Iterable[tuple[float, int]],
    used: int,
    now: float,
    limit: int,
    window_s: float,
    amount: int,
) -> Decision:
    """The decision for a hit that does not fit; `entries` oldest first, all still counting."""
    # The hit fits once used <= limit - max(amount, 1) (used < limit covers amount 0).
    target = limit - max(amount, 1)
    reset_after_s = window_s
    if target >= 0:
        left = used
        for time, entry_amount in entries:
            left -= entry_amount
            if left <= target:
                reset_after_s = time + window_s - now
                break
    return Decision(False, limit, max(0, limit - used), reset_after_s)


def allowed(used_after: int, limit: int) -> Decision:
    """The decision for a hit that fit, `used_after` counting its own amount."""
    return Decision(True, limit, max(0, limit - used_after), 0.0)
