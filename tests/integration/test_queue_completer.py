"""The Completer: outcomes from many threads recorded in batches, and kept across a lost connection."""

from __future__ import annotations

import threading

import psycopg
from river_supervisor import db as rdb
from river_supervisor import queue
from river_supervisor.queue import Completed, Completer, Failed, JobSpec

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


def test_unstorable_texts_are_sanitised_and_a_bad_row_is_isolated(
    db: psycopg.Connection, database_url: str
) -> None:
    """Issue 9 item 4: a NUL byte or a lone surrogate in a handler's error (or output) cannot fail the
    batch, and a row the database refuses for another reason is isolated: the other 198 land."""
    ids = _running_jobs(db, 200)
    nul, surrogate, nul_output, not_json = ids[:4]
    outcomes = [
        Failed(nul, 1, 5, "ValueError: bad \x00 byte", "Traceback ...\x00", 0),
        Failed(surrogate, 1, 5, "UnicodeError: lone \udc80 surrogate", None, 0),
        Completed(nul_output, output='{"text":"a\\u0000b","lone":"\\udc80"}'),
        Completed(not_json, output="{not json"),  # the database refuses it: only this row is affected
        *(Completed(i) for i in ids[4:]),
    ]
    flushed: list[int] = []
    completer = Completer(database_url, on_flushed=flushed.extend, batch_size=200).start()
    try:
        for outcome in outcomes:
            completer.submit(outcome)
        assert completer.flush(timeout=30)
    finally:
        completer.close()
    print(f"\nrecorded {completer.recorded}, dropped {completer.dropped}")
    assert completer.dropped == 0 and sorted(flushed) == sorted(ids)
    rows = {
        r["id"]: r
        for r in db.execute(
            "select id, state, errors, metadata from river_job where id = any(%s)",
            ([nul, surrogate, nul_output, not_json],),
        )
    }
    assert (
        rows[nul]["state"] == "available" and rows[nul]["errors"][0]["error"] == "ValueError: bad \ufffd byte"
    )
    assert rows[nul]["errors"][0]["trace"] == "Traceback ...\ufffd"
    assert rows[surrogate]["errors"][0]["error"] == "UnicodeError: lone \ufffd surrogate"
    assert rows[nul_output]["metadata"]["output"] == {"text": "a\ufffdb", "lone": "\ufffd"}
    assert rows[not_json]["state"] == "completed" and "output" not in rows[not_json]["metadata"]
    assert _states(db) == {"completed": 198, "available": 2}
