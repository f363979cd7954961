"""The LISTEN helper against a real PostgreSQL: non-blocking drain, reconnect, LISTEN again first."""

from __future__ import annotations

import select
from collections.abc import Iterator

import psycopg
import pytest
from river_supervisor.notifier import Listener

from tests.harness.wait import wait_until

CHANNEL = "public.river_supervisor_test"


@pytest.fixture
def listener(database_url: str) -> Iterator[Listener]:
    made = Listener(database_url, [CHANNEL], backoff=lambda attempt: 0.01)
    made.connect()
    yield made
    made.close()


@pytest.fixture
def sender(database_url: str) -> Iterator[psycopg.Connection]:
    conn = psycopg.connect(database_url, autocommit=True)
    yield conn
    conn.close()


def _readable(listener: Listener, timeout: float = 5.0) -> bool:
    fd = listener.fileno()
    assert fd is not None
    return bool(select.select([fd], [], [], timeout)[0])


def test_poll_returns_at_once_when_nothing_arrived(listener: Listener) -> None:
    batch = listener.poll()
    assert batch.notifications == [] and not batch.reconnected


def test_notifications_arrive_on_the_socket_and_are_drained_in_order(
    listener: Listener, sender: psycopg.Connection
) -> None:
    with sender.transaction():
        sender.execute("select pg_notify(%s, 'one'), pg_notify(%s, 'two')", (CHANNEL, CHANNEL))
    assert _readable(listener)
    got = wait_until(lambda: listener.poll().notifications, describe="notifications")
    assert [(n.channel, n.payload) for n in got] == [(CHANNEL, "one"), (CHANNEL, "two")]


def test_after_a_lost_connection_it_listens_again_before_reporting_reconnected(
    listener: Listener, sender: psycopg.Connection
) -> None:
    fd = listener.fileno()
    pid = sender.execute(
        "select pid from pg_stat_activity where application_name = %s", (listener.application_name,)
    ).fetchone()
    assert fd is not None and pid is not None
    sender.execute("select pg_terminate_backend(%s)", (pid[0],))
    assert _readable(listener)  # the server closing the connection wakes the loop

    # The loop polls whenever the socket is readable (the FATAL message, then the EOF).
    wait_until(lambda: _readable(listener) and listener.poll() is not None and not listener.connected)
    assert listener.fileno() is None
    deadline = listener.next_deadline()
    assert deadline < float("inf")

    batch = listener.poll(now=deadline)
    assert batch.reconnected and listener.connected
    sender.execute("select pg_notify(%s, 'after')", (CHANNEL,))  # the owner re-reads state here
    assert _readable(listener)
    got = wait_until(lambda: listener.poll().notifications, describe="a notification after reconnecting")
    assert [n.payload for n in got] == ["after"]


def test_wait_returns_a_notification_or_times_out(listener: Listener, sender: psycopg.Connection) -> None:
    assert listener.wait(0.05).notifications == []
    sender.execute("select pg_notify(%s, 'hello')", (CHANNEL,))
    assert [n.payload for n in listener.wait(5.0).notifications] == ["hello"]
