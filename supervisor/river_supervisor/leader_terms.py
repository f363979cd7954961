"""What a leadership term is made of: the term, the process that holds it, the lease's timings.

Owns ``Term``, ``NodeIdentity`` (``leader_id``, also the node registry's key), ``Timings`` (every
interval of the elector, derived from the lease length alone) and ``VanishedHolder`` (the grace a
holder whose lease session vanished gets before a follower takes over). Pure values: it may import
``backoff`` and the standard library, nothing that touches the database.
"""

from __future__ import annotations

import os
import random
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .backoff import service_backoff

LEADER_ID_MAX = 127


@dataclass(frozen=True, slots=True)
class Term:
    """One tenure: who led which cluster, under which term number, since when."""

    cluster: str
    leader_id: str  # node:pid:boot_id, unique per process
    node: str
    term: int
    elected_at: datetime


@dataclass(frozen=True, slots=True)
class Timings:
    """Every interval of the elector, derived from the lease length alone."""

    ttl: float
    renew_interval: float  # ttl / 3 (River: 5 s of 15 s)
    margin: float  # trust ends this long before the lease could: clock rate error, send-to-now() gap
    poll_interval: float  # follower bids: ttl / 20 within [0.25 s, 1 s], for crash failover < 2 s
    statement_timeout: float  # bounds each statement of a step: a stuck database cannot stall the loop
    lock_timeout: float  # a takeover waits this long for a fenced transaction, then retries later
    retry_cap: float  # renewal, bid and reconnect retries back off 1 s doubling up to this
    session_grace: float  # a holder whose lease session vanished has this long to come back on a new one

    @classmethod
    def from_ttl(cls, ttl: float) -> Timings:
        if not ttl > 0:
            raise ValueError(f"leadership ttl must be positive, not {ttl}")
        third = ttl / 3
        return cls(
            ttl=ttl,
            renew_interval=third,
            margin=min(max(1.0, ttl / 10), ttl / 4),
            poll_interval=min(max(ttl / 20, 0.25), 1.0),
            statement_timeout=min(5.0, third),
            lock_timeout=min(2.0, third),
            retry_cap=max(third, 0.1),
            session_grace=min(1.0, third),
        )

    def trusted_until(self, sent: float) -> float:
        """Trust granted by a renewal or bid that was *sent* at monotonic time ``sent``."""
        return sent + self.ttl - self.margin

    def retry_delay(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        return service_backoff(attempt, base=min(1.0, self.retry_cap), cap=self.retry_cap, rand=rand)


@dataclass(frozen=True, slots=True)
class NodeIdentity:
    """One supervisor process: node name, pid and a random boot id, never mistaken for another."""

    node: str
    pid: int
    boot_id: str

    @classmethod
    def current(cls, node: str) -> NodeIdentity:
        return cls(node=node, pid=os.getpid(), boot_id=secrets.token_hex(6))

    @property
    def leader_id(self) -> str:
        """``node:pid:boot_id``, at most 127 characters (a long node name is cut, never the rest)."""
        suffix = f":{self.pid}:{self.boot_id}"
        return self.node[: LEADER_ID_MAX - len(suffix)] + suffix

    node_id = leader_id  # the node registry's key is the same string


class VanishedHolder:
    """Since when the lease holder's session has been gone, to time its grace before a takeover."""

    def __init__(self, grace: float) -> None:
        self.grace = grace
        self._seen: tuple[int, int, float] | None = None  # (term, backend pid, first seen gone)

    def watch(self, holder: Mapping[str, Any] | None, now: float) -> float | None:
        """Note the holder a lost bid saw: when its grace ends if its lease session is gone, else None."""
        if holder is None or not holder.get("backend_gone"):
            self._seen = None
            return None
        key = (holder["term"], holder["backend_pid"])
        if self._seen is None or self._seen[:2] != key:
            self._seen = (*key, now)
        return self._seen[2] + self.grace

    def takeover_backend(self, now: float) -> int | None:
        """The holder's vanished session, once it has stayed gone for the grace: may be taken over."""
        if self._seen is not None and now - self._seen[2] >= self.grace:
            return self._seen[1]
        return None

    def forget(self) -> None:
        self._seen = None
