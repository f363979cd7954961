"""Wait on facts, never on time: poll a condition against a monotonic deadline."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeout(AssertionError):
    pass


def wait_until(
    condition: Callable[[], T],
    timeout: float = 10.0,
    describe: str = "condition",
    interval: float = 0.02,
    context: Callable[[], str] | None = None,
) -> T:
    """Return the first truthy value of ``condition()``; raise with the last value on timeout.

    ``context`` is called on timeout to add, for example, a log tail to the failure message.
    """
    deadline = time.monotonic() + timeout
    last: T | None = None
    while True:
        last = condition()
        if last:
            return last
        if time.monotonic() >= deadline:
            extra = f"\n{context()}" if context else ""
            raise WaitTimeout(
                f"timed out after {timeout}s waiting for {describe}; last value: {last!r}{extra}"
            )
        time.sleep(interval)
