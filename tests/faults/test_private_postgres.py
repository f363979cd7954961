"""The private cluster's fault helpers do what the database fault tests rely on."""

from __future__ import annotations

import time

import psycopg
import pytest
from psycopg import errors

from tests.harness.private_postgres import PrivatePostgres

pytestmark = pytest.mark.faults


def test_fault_helpers_restart_freeze_read_only_and_terminate(private_postgres: PrivatePostgres) -> None:
    url = private_postgres.url("river")
    with psycopg.connect(url, autocommit=True, application_name="victim") as victim:
        with private_postgres.read_only(), pytest.raises(errors.ReadOnlySqlTransaction):
            victim.execute("create table t (x int)")
        victim.execute("create table t (x int)")  # writable again, same session

        assert private_postgres.terminate_connections(application_name="vict%")
        with pytest.raises(psycopg.OperationalError):
            victim.execute("select 1")

    with private_postgres.frozen() as pids:
        assert len(pids) >= 2  # the postmaster and its auxiliary processes
        started = time.monotonic()
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(url, connect_timeout=2)
        print(f"\nconnect to a frozen cluster failed after {time.monotonic() - started:.2f} s")
    assert private_postgres.query("select 1 as one") == [{"one": 1}]

    private_postgres.stop("immediate")
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=2)
    private_postgres.start()
    assert private_postgres.query("select count(*) as n from t") == [{"n": 0}]
