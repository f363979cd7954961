"""A requested resign (River's request_resign, naming the cluster) between electors in one process."""

from __future__ import annotations

import psycopg
from river_supervisor.leadership import REQUESTED_RESIGN_HOLD_OFF, request_resign

from tests.integration.test_leadership_support import (
    MakeElector,
    db,
    kinds,
    lease_row,
    make_elector,
    wait_readable,
)

__all__ = ["db", "make_elector"]  # fixtures, imported for pytest


def test_requested_resign_hands_over_and_the_old_leader_holds_off(
    make_elector: MakeElector, db: psycopg.Connection
) -> None:
    leader, follower = make_elector("a"), make_elector("b")
    assert kinds(leader.step()) == ["gained"]
    assert kinds(follower.step()) == []
    old = leader.term
    assert old is not None

    request_resign(db, "default")
    wait_readable(follower)
    assert kinds(follower.step()) == []  # heard too; a follower has nothing to give up
    wait_readable(leader)
    resigned = leader.step()
    assert kinds(resigned) == ["resigned"] and resigned[0].detail == {"reason": "requested"}
    assert leader.term is None and lease_row(db) is None
    # The old leader bids again only after the hold-off, so the woken follower wins.
    hold_off = REQUESTED_RESIGN_HOLD_OFF * leader.timings.poll_interval
    assert leader.next_deadline() > leader._clock() + hold_off / 2

    wait_readable(follower)
    gained = follower.step()
    assert kinds(gained) == ["gained"] and gained[0].term > old.term
    assert kinds(leader.step(now=leader.next_deadline())) == []  # loses its later bid
    assert lease_row(db)["leader_id"] == follower.identity.leader_id  # type: ignore[index]


def test_a_request_for_another_cluster_changes_nothing(
    make_elector: MakeElector, db: psycopg.Connection
) -> None:
    leader = make_elector("a")
    assert kinds(leader.step()) == ["gained"]
    held = leader.term
    request_resign(db, "elsewhere")
    wait_readable(leader)
    assert kinds(leader.step()) == [] and leader.term == held
