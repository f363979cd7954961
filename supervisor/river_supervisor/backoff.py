"""Service retry: how long a failing loop (a renewal, a reconnect, a leader-only tick) waits.

One named function, River's ``serviceutil.ExponentialBackoff``: 1 s doubling to a 60 s cap, each
wait scattered by ±10 % so that many processes failing together do not retry together. Attempts
count from 1 and reset on success (the caller keeps the count). Job retry backoff (attempt^4) is
a different function in ``queue``.
"""

from __future__ import annotations

import random
from collections.abc import Callable

BASE = 1.0
CAP = 60.0
JITTER = 0.10


def service_backoff(
    attempt: int,
    *,
    base: float = BASE,
    cap: float = CAP,
    jitter: float = JITTER,
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait before retry number ``attempt`` (1, 2, ...): ``min(cap, base * 2^(attempt-1))``.

    The result is scattered uniformly within ``±jitter`` of that value; ``rand`` returns [0, 1).
    """
    if attempt < 1:
        raise ValueError(f"attempt must be 1 or more, not {attempt}")
    if base <= 0 or cap < base:
        raise ValueError(f"need 0 < base <= cap, got base={base} cap={cap}")
    # Cap the exponent before raising 2 to it: attempt 2000 must not overflow a float.
    exponent = min(attempt - 1, 64)
    delay = min(cap, base * 2.0**exponent)
    return delay * (1.0 + jitter * (2.0 * rand() - 1.0))
