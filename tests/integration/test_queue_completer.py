"""The Completer: outcomes from many threads recorded in batches, and kept across a lost connection."""

from __future__ import annotations

import threading

import psycopg
from river_supervisor import db as rdb
from river_supervisor import queue
from river_supervisor.queue import Completed, Completer, JobSpec

from tests.harness.wait import wait_until


def _running_jobs(db: psycopg.Connection, count: int) -> list[int]:
    queue.insert_many_copy(db, [JobSpec("k.k", {"i": i}) for i in range(count)])
    return [job.id for job in queue.fetch(db, "default", count, "w")]


def _states(db: psycopg.Connection) -> dict[str, int]:
    return {
        r["state"]: r["n"] for r in db.execute("select state, count(*) as n from river_job group by state")
    }


def test_outcomes_from_many_threads_are_all_recorded(db: psycopg.Connection, database_url: str) -> None:
    ids = _running_jobs(db, 400)
    flushed: list[int] = []
    completer = Completer(database_url, on_flushed=flushed.extend).start()
    chunks = [ids[i::4] for i in range(4)]
    threads = [
        threading.Thread(target=lambda c=c: [completer.submit(Completed(i)) for i in c]) for c in chunks
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert completer.flush(timeout=10)
    assert _states(db) == {"completed": 400}
    assert completer.close()
    assert completer.recorded == 400 and completer.dropped == 0
    assert sorted(flushed) == sorted(ids)


def test_a_few_outcomes_are_recorded_without_a_flush(db: psycopg.Connection, database_url: str) -> None:
    (job_id,) = _running_jobs(db, 1)
    completer = Completer(lambda: rdb.connect(database_url)).start()
    try:
        completer.submit(Completed(job_id))  # below the batch size: the time limit flushes it
        wait_until(lambda: _states(db) == {"completed": 1}, 5, "the lone outcome to be recorded")
    finally:
        completer.close()


def test_batch_is_kept_and_retried_after_the_connection_is_lost(
    db: psycopg.Connection, database_url: str
) -> None:
    ids = _running_jobs(db, 3)
    app = "completer-reconnect-test"
    completer = Completer(lambda: rdb.connect(database_url, application_name=app)).start()
    try:
        completer.submit(Completed(ids[0]))
        assert completer.flush(timeout=10)
        killed = db.execute(
            "select count(pg_terminate_backend(pid)) as n from pg_stat_activity where application_name = %s",
            (app,),
        ).fetchone()["n"]
        assert killed == 1
        completer.submit(Completed(ids[1]))
        completer.submit(Completed(ids[2]))
        assert completer.flush(timeout=10)
        assert _states(db) == {"completed": 3}
        assert completer.dropped == 0
    finally:
        completer.close()
