"""How leadership is worded: its events, their one message, and the elector's log lines.

Owns ``LeadershipEvent`` (what a change is, its level and ``message()``, used by the log line and
the Sentry event alike), the loss a successor reports for a holder that did not resign, and every
line the elector logs (logger ``river_supervisor.leadership``, which operators filter on). Pure: it
may import ``leader_terms``, ``errors`` and the standard library, nothing that touches the database.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from .errors import first_line
from .leader_terms import NodeIdentity, Term

# The elector's logger keeps the name it had before its wording moved here.
logger = logging.getLogger("river_supervisor.leadership")

EventKind = Literal["gained", "resigned", "lost", "expired", "superseded", "reconnected"]


@dataclass(frozen=True, slots=True)
class LeadershipEvent:
    """One leadership change seen by this process; ``leader_id``/``term`` is the term it is about."""

    kind: EventKind
    cluster: str
    node: str
    leader_id: str
    term: int
    other_leader_id: str | None  # previous holder (gained) or next holder (superseded)
    at: datetime
    detail: Mapping[str, Any] = field(default_factory=dict)

    @property
    def level(self) -> int:
        return logging.INFO if self.kind in ("gained", "resigned") else logging.WARNING

    @property
    def ends_term(self) -> bool:
        """Whether this process stopped leading: not on a gain, a reconnect, or a peer's loss it reports."""
        return self.kind not in ("gained", "reconnected") and not self.reported_by_successor

    @property
    def reported_by_successor(self) -> bool:
        """The loss of a holder that did not resign, reported by the node that replaced it."""
        return "reported_by" in self.detail

    def message(self) -> str:
        """The one wording of this change, for the log line and the Sentry event alike."""
        if self.reported_by_successor:
            return _peer_lost_message(self)
        where = f"cluster {self.cluster} (term {self.term})"
        text = {
            "gained": f"leadership gained: node {self.node} leads {where}",
            "resigned": f"leadership resigned: node {self.node} stepped down in {where}",
            "lost": f"leadership lost: node {self.node} no longer leads {where}",
            "expired": f"leadership expired: the lease of {self.leader_id} in {where} was not renewed"
            " within the trust window",
            "superseded": f"leadership superseded: node {self.node} was replaced in {where}",
            "reconnected": f"leadership reconnected: node {self.node} lost its lease connection in {where};"
            " the term continues on a new one",
        }.get(self.kind, f"leadership {self.kind}: node {self.node} in {where}")
        if self.other_leader_id and self.kind != "reconnected":
            text += f", {'previous' if self.kind == 'gained' else 'next'} holder {self.other_leader_id}"
        return text


_LOSS_REASONS = {
    "session_gone": "its lease session vanished (a crash, a kill, a lost host)",
    "lease_expired": "its lease expired without renewal (paused, cut off, or its database was away)",
}


def _peer_lost_message(ev: LeadershipEvent) -> str:
    """The loss of a holder that did not resign, as its successor reports it."""
    reason = str(ev.detail.get("reason"))
    gap = ev.detail.get("leaderless_seconds")
    took = f"node {ev.detail.get('reported_by')} took over (term {ev.detail.get('next_term')})"
    leaderless = f" after {gap:.1f} s without a leader" if isinstance(gap, int | float) else ""
    return (
        f"leadership lost: node {ev.node} (term {ev.term}) in cluster {ev.cluster}:"
        f" {_LOSS_REASONS.get(reason, reason)}; {took}{leaderless}"
    )


def _extra(event: str, cluster: str, node: str, term: int | None, **fields: Any) -> dict[str, Any]:
    return {"event": event, "cluster": cluster, "node": node, "term": term, **fields}


def log_event(ev: LeadershipEvent) -> None:
    # not this process's own loss: its log event says so
    name = "leadership.peer_lost" if ev.reported_by_successor else f"leadership.{ev.kind}"
    logger.log(
        ev.level,
        "%s",
        ev.message(),
        extra=_extra(
            name,
            ev.cluster,
            ev.node,
            ev.term,
            leadership_event=ev.kind,
            leader_id=ev.leader_id,
            other_leader_id=ev.other_leader_id,
            detail=dict(ev.detail),
        ),
    )


def peer_lost(row: Mapping[str, Any], cluster: str, successor: NodeIdentity) -> LeadershipEvent:
    """The loss of the holder ``successor`` replaced, as that holder would report it (if it could).

    ``row`` is the winning bid's row (``leader_campaign``), which names the previous holder.
    """
    reason = "lease_expired" if row["previous_event"] == "expired" else "session_gone"
    leaderless = None
    if row.get("previous_renewed_at") is not None:
        leaderless = round(max(0.0, (row["elected_at"] - row["previous_renewed_at"]).total_seconds()), 3)
    return LeadershipEvent(
        kind="lost",
        cluster=cluster,
        node=row["previous_node"] or "",
        leader_id=row["previous_leader_id"],
        term=row["previous_term"],
        other_leader_id=successor.leader_id,
        at=row["elected_at"],
        detail={
            "reason": reason,
            "leaderless_seconds": leaderless,  # from its last renewal to our election
            "next_term": row["term"],
            "reported_by": successor.node,
        },
    )


def term_event(
    kind: EventKind,
    held: Term,
    node: str,
    other: str | None,
    detail: dict[str, Any],
    at: datetime | None = None,
) -> LeadershipEvent:
    """A change of ``held`` seen by this process (on ``node``); ``at`` defaults to now."""
    return LeadershipEvent(
        kind=kind,
        cluster=held.cluster,
        node=node,
        leader_id=held.leader_id,
        term=held.term,
        other_leader_id=other,
        at=at or datetime.now(UTC),
        detail=detail,
    )


# -- the elector's log lines that are not events -----------------------------------------------


def log_resign_requested(held: Term, node: str) -> None:
    logger.info(
        "resigning leadership of cluster %s on request",
        held.cluster,
        extra=_extra("leadership.resign_requested", held.cluster, node, held.term),
    )


def log_lease_lost(held: Term, trust_left: float, exc: BaseException) -> None:
    logger.warning(
        "lease connection lost while leading cluster %s (term %d): %s; reconnecting, trusted %.1fs more",
        held.cluster,
        held.term,
        first_line(exc),
        trust_left,
        extra=_extra("leadership.lease_lost", held.cluster, held.node, held.term, error=first_line(exc)),
    )


def log_renewal_failed(held: Term, attempt: int, remaining: float, delay: float, exc: BaseException) -> None:
    logger.warning(
        "renewing leadership failed (attempt %d); trusted for %.1fs more: %s",
        attempt,
        remaining,
        first_line(exc),
        extra=_extra(
            "leadership.renewal_failed",
            held.cluster,
            held.node,
            held.term,
            attempt=attempt,
            trust_remaining=remaining,
            sleep_duration=delay,
            error=first_line(exc),
        ),
    )


def log_continued(held: Term, reconnects: int) -> None:
    logger.info(
        "term %d of cluster %s continues on a new lease connection (reconnect %d of this term)",
        held.term,
        held.cluster,
        reconnects,
        extra=_extra("leadership.continued", held.cluster, held.node, held.term),
    )


def log_renewed(held: Term) -> None:
    logger.debug(
        "renewed leadership of cluster %s (term %d)",
        held.cluster,
        held.term,
        extra=_extra("leadership.renewed", held.cluster, held.node, held.term),
    )


def log_election_failed(cluster: str, node: str, attempt: int, delay: float, exc: BaseException) -> None:
    logger.warning(
        "election attempt failed (attempt %d); retrying in %.1fs: %s",
        attempt,
        delay,
        first_line(exc),
        extra=_extra(
            "leadership.election_failed",
            cluster,
            node,
            None,
            attempt=attempt,
            sleep_duration=delay,
            error=first_line(exc),
        ),
    )


def log_denied(cluster: str, node: str) -> None:
    logger.debug(
        "election denied for cluster %s",
        cluster,
        extra=_extra("leadership.denied", cluster, node, None),
    )


def log_attempt_failed(
    event: str, template: str, cluster: str, node: str, attempt: int, exc: BaseException
) -> None:
    """A failed resign or lease reconnect: ``template`` takes the attempt and the error's first line."""
    logger.warning(
        template,
        attempt,
        first_line(exc),
        extra=_extra(event, cluster, node, None, attempt=attempt, error=first_line(exc)),
    )
