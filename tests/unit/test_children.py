"""The parent's rules for worker exits, without processes: classification and the restart policy."""

from __future__ import annotations

import signal

from river_supervisor.children import RestartPolicy, classify_exit


def test_an_exit_is_a_boot_failure_only_before_ready_whatever_its_code() -> None:
    # A job's os._exit(3) after "ready" is a crash, not "could not start"; any code before it is.
    late = classify_exit(3, ready=True, stopping=False, killed_by_us=False)
    assert late.description == "exited with code 3" and not late.boot_failure
    early = classify_exit(1, ready=False, stopping=False, killed_by_us=False)
    assert early.boot_failure and early.description == "could not start (exited with code 1)"
    assert classify_exit(3, ready=False, stopping=False, killed_by_us=False).description == (
        "could not start (boot error)"
    )


def test_signals_are_named_and_our_own_stops_are_not_crashes() -> None:
    segv = classify_exit(-signal.SIGSEGV, ready=True, stopping=False, killed_by_us=False)
    assert segv.abnormal and segv.description == "killed by SIGSEGV"
    oom = classify_exit(-signal.SIGKILL, ready=True, stopping=False, killed_by_us=False)
    assert "perhaps out of memory" in oom.description
    ours = classify_exit(-signal.SIGKILL, ready=True, stopping=False, killed_by_us=True)
    assert not ours.abnormal and ours.description == "stopped by SIGKILL"
    assert not classify_exit(0, ready=True, stopping=True, killed_by_us=False).abnormal
    assert classify_exit(None, ready=True, stopping=False, killed_by_us=False).abnormal


def test_a_worker_that_booted_is_restarted_forever_with_a_capped_backoff() -> None:
    policy = RestartPolicy()
    crash = classify_exit(-signal.SIGKILL, ready=True, stopping=False, killed_by_us=False)
    delays = [policy.record_exit(0, float(n), crash).delay for n in range(50)]
    assert delays[:4] == [0.5, 1.0, 2.0, 4.0]
    assert max(delays) == policy.cap == 5.0
    assert not policy.open_breakers
    # crashes older than the window no longer count
    assert policy.record_exit(0, 1000.0, crash).delay == 0.5


def test_only_boot_failures_open_the_breaker_which_retries_and_closes() -> None:
    policy = RestartPolicy(trip_after=3, breaker_retry=60.0)
    boot = classify_exit(3, ready=False, stopping=False, killed_by_us=False)
    first = [policy.record_exit(1, float(n), boot, "ImportError: no module x") for n in range(3)]
    assert [d.tripped for d in first] == [False, False, True]
    assert first[-1].delay == 60.0 and policy.open_breakers == {1: "ImportError: no module x"}
    again = policy.record_exit(1, 100.0, boot)
    assert again.breaker_open and not again.tripped and again.delay == 60.0  # still retried, quietly
    assert policy.record_ready(1) is True and not policy.open_breakers
    assert policy.record_exit(1, 200.0, boot).delay == 0.5  # the count started again


def test_a_failed_start_backs_off_without_tripping_anything() -> None:
    policy = RestartPolicy()
    assert [policy.spawn_failed(0) for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    policy.spawned(0)
    assert policy.spawn_failed(0) == 0.5 and not policy.open_breakers
