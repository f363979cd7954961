"""A private PostgreSQL cluster for fault tests: restart it, freeze it, make it read-only, kill its sessions.

Never the shared server of TEST_DATABASE_URL: a developer's or CI's other clients use that one. This
module runs ``initdb`` (Debian's PostgreSQL 15 binaries, or ``PG_BINDIR``) into a temporary directory,
starts the server on a free loopback port with trust authentication, and removes everything afterwards.

The server refuses to run as root, so when the tests run as root every server command runs as the
``postgres`` OS user (``runuser -u postgres --``) on a data directory it owns. One ``initdb`` per test
session: each test copies that template (fast) and gets a cluster of its own.

    cluster = PrivatePostgres.create(); cluster.start()
    url = cluster.create_database("river", migrate=True)
    cluster.stop("immediate"); cluster.start()        # crash restart
    with cluster.frozen(): ...                         # SIGSTOP postmaster and backends
    with cluster.read_only(): ...                      # ALTER SYSTEM default_transaction_read_only
    cluster.terminate_connections(application_name="river-supervisor%")
    cluster.remove()
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from tests.harness.database import pid_alive
from tests.harness.supervisors import SupervisorFactory

BINDIR = Path(os.environ.get("PG_BINDIR", "/usr/lib/postgresql/15/bin"))
DIR_PREFIX = "river-supervisor-pg-"
RUN_AS = "postgres"  # the OS user the server runs as when we are root
START_TIMEOUT = 60  # seconds; a crash restart replays WAL on a loaded machine

# Small and quick: no durability needed beyond the OS page cache (an immediate stop keeps it; commits
# still write their WAL before they return, so a crash restart loses nothing committed), no background
# noise in the tests' figures.
SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "max_connections": "100",
    "shared_buffers": "32MB",
    "fsync": "off",
    "full_page_writes": "off",
    "autovacuum": "off",
    "log_min_messages": "warning",
    "logging_collector": "off",
}


def available() -> str | None:
    """Why a private cluster cannot be made here, or None when it can."""
    for tool in ("initdb", "pg_ctl", "postgres"):
        if not (BINDIR / tool).exists():
            return f"no {BINDIR / tool} (set PG_BINDIR to PostgreSQL's bin directory)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(RUN_AS)
        except KeyError:
            return f"running as root and there is no {RUN_AS!r} OS user to run the server as"
        if shutil.which("runuser") is None:
            return "running as root and there is no runuser"
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _children(pid: int) -> list[int]:
    """Direct children of ``pid`` (the postmaster's backends and auxiliary processes)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def _signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


class PrivatePostgres:
    """One cluster in its own directory: ``data/`` (the cluster), ``server.log``, the socket."""

    def __init__(self, root: Path, port: int) -> None:
        self.root = root
        self.data = root / "data"
        self.log = root / "server.log"
        self.port = port
        self._frozen: list[int] = []

    # -- creation ---------------------------------------------------------------------------------

    @classmethod
    def initdb(cls) -> PrivatePostgres:
        """A new, stopped cluster (``initdb``, trust auth, our settings) in a fresh temporary directory."""
        remove_leftovers()
        root = Path(tempfile.mkdtemp(prefix=f"{DIR_PREFIX}{os.getpid()}-"))
        cluster = cls(root, free_port())
        cluster._own(root)
        cluster._run(
            [
                str(BINDIR / "initdb"),
                "-D",
                str(cluster.data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
                "--locale=C.UTF-8",
            ],
            timeout=120,
        )
        with (cluster.data / "postgresql.conf").open("a") as conf:
            conf.write("\n# river-supervisor test harness\n")
            conf.writelines(f"{key} = {value}\n" for key, value in SETTINGS.items())
            conf.write(f"unix_socket_directories = '{root}'\n")
        return cluster

    def copy(self) -> PrivatePostgres:
        """A new, stopped cluster with this (stopped) one's data, in its own directory and port."""
        root = Path(tempfile.mkdtemp(prefix=f"{DIR_PREFIX}{os.getpid()}-"))
        shutil.copytree(self.data, root / "data", symlinks=True)
        conf = root / "data" / "postgresql.conf"
        conf.write_text(conf.read_text().replace(f"'{self.root}'", f"'{root}'"))
        clone = type(self)(root, free_port())
        clone._own(root)
        return clone

    def _own(self, path: Path) -> None:
        if os.geteuid() == 0:
            entry = pwd.getpwnam(RUN_AS)
            for dirpath, _dirs, files in os.walk(path):
                os.chown(dirpath, entry.pw_uid, entry.pw_gid)
                for name in files:
                    os.chown(os.path.join(dirpath, name), entry.pw_uid, entry.pw_gid)
            if path == self.root:
                os.chmod(path, 0o700)

    def _run(self, argv: list[str], timeout: float = START_TIMEOUT) -> subprocess.CompletedProcess[str]:
        if os.geteuid() == 0:
            argv = ["runuser", "-u", RUN_AS, "--", *argv]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=self.root)
        if result.returncode != 0:
            output = result.stdout + result.stderr
            raise RuntimeError(f"{' '.join(argv)} exited {result.returncode}:\n{output}\n{self.log_tail()}")
        return result

    # -- addresses --------------------------------------------------------------------------------

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def admin(self, database: str = "postgres") -> psycopg.Connection:
        """An autocommit connection that may write even while the cluster is read-only."""
        return psycopg.connect(
            self.url(database),
            autocommit=True,
            connect_timeout=10,
            application_name="test-harness",
            options="-c default_transaction_read_only=off",
        )

    def create_database(self, name: str = "river", migrate: bool = True) -> str:
        with self.admin() as conn:
            conn.execute(f'create database "{name}"')
        url = self.url(name)
        if migrate:
            from river_supervisor import schema

            with psycopg.connect(url, autocommit=True) as conn:
                schema.migrate(conn)
        return url

    # -- life cycle -------------------------------------------------------------------------------

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])
        except (FileNotFoundError, ValueError):
            return None

    def running(self) -> bool:
        pid = self.postmaster_pid()
        return pid is not None and pid_alive(pid)

    def start(self) -> PrivatePostgres:
        """Start and wait until it accepts connections (pg_ctl -w)."""
        self._run(
            [
                str(BINDIR / "pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.log),
                "-w",
                "-t",
                str(START_TIMEOUT),
                "-o",
                f"-p {self.port}",
                "start",
            ],
            timeout=START_TIMEOUT + 10,
        )
        return self

    def stop(self, mode: str = "fast") -> None:
        """``fast`` (sessions rolled back, a clean shutdown) or ``immediate`` (a crash: WAL replay)."""
        if mode not in ("smart", "fast", "immediate"):
            raise ValueError(f"stop mode {mode!r}")
        self.thaw()
        self._run(
            [
                str(BINDIR / "pg_ctl"),
                "-D",
                str(self.data),
                "-w",
                "-t",
                str(START_TIMEOUT),
                "-m",
                mode,
                "stop",
            ],
            timeout=START_TIMEOUT + 10,
        )

    def restart(self, mode: str = "fast", down_for: float = 0.0) -> float:
        """Stop in ``mode``, stay down ``down_for`` seconds, start; return the seconds it was down."""
        self.stop(mode)
        stopped = time.monotonic()
        if down_for > 0:
            time.sleep(down_for)  # the fault under test: the database is gone for this long
        self.start()
        return time.monotonic() - stopped

    def remove(self) -> None:
        """Stop (whatever state it is in) and delete the directory."""
        self.thaw()
        _signal_all(self.server_pids(), signal.SIGCONT)  # frozen by a run that crashed mid-test
        pid = self.postmaster_pid()
        if pid is not None and pid_alive(pid):
            try:
                self.stop("immediate")
            except (RuntimeError, subprocess.TimeoutExpired):
                _signal_all([pid, *_children(pid)], signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)

    # -- faults -----------------------------------------------------------------------------------

    def server_pids(self) -> list[int]:
        pid = self.postmaster_pid()
        if pid is None or not pid_alive(pid):
            return []
        return [pid, *_children(pid)]

    def freeze(self) -> list[int]:
        """SIGSTOP the postmaster (first: it forks no more) and every backend. Returns the pids stopped."""
        pid = self.postmaster_pid()
        if pid is None:
            raise RuntimeError("freeze: the cluster is not running")
        os.kill(pid, signal.SIGSTOP)
        pids = [pid, *_children(pid)]
        _signal_all(pids[1:], signal.SIGSTOP)
        self._frozen = pids
        return pids

    def thaw(self) -> None:
        """SIGCONT what ``freeze`` stopped (backends first, then the postmaster)."""
        pids, self._frozen = self._frozen, []
        _signal_all(pids[1:], signal.SIGCONT)
        _signal_all(pids[:1], signal.SIGCONT)

    @contextlib.contextmanager
    def frozen(self) -> Iterator[list[int]]:
        pids = self.freeze()
        try:
            yield pids
        finally:
            self.thaw()

    def set_read_only(self, on: bool) -> None:
        """Every new transaction read-only (as on a replica after a failover, or a full disk's remedy).

        Returns once a new session sees the setting: the postmaster signals every backend in the same
        step as it reloads (PostgreSQL 15), and a backend applies it before it reads its next command,
        so the sessions already open turn read-only (or back) too.
        """
        with self.admin() as conn:
            if on:
                conn.execute("alter system set default_transaction_read_only = on")
            else:
                conn.execute("alter system reset default_transaction_read_only")
            conn.execute("select pg_reload_conf()")
        expected = "on" if on else "off"
        deadline = time.monotonic() + 30
        while (
            self.query("show default_transaction_read_only", plain=True)[0]["default_transaction_read_only"]
            != expected
        ):
            if time.monotonic() > deadline:
                raise RuntimeError(f"default_transaction_read_only did not become {expected} within 30 s")
            time.sleep(0.02)

    @contextlib.contextmanager
    def read_only(self) -> Iterator[None]:
        self.set_read_only(True)
        try:
            yield
        finally:
            self.set_read_only(False)

    def terminate_connections(
        self, database: str | None = None, application_name: str | None = None, pids: list[int] | None = None
    ) -> list[int]:
        """``pg_terminate_backend`` on client sessions (except the harness's own) matching every filter
        given: a database, an ``application_name`` LIKE pattern, a list of backend pids. Returns the pids."""
        clauses = [
            "backend_type = 'client backend'",
            "pid <> pg_backend_pid()",
            "application_name <> 'test-harness'",
        ]
        params: list[object] = []
        if database is not None:
            clauses.append("datname = %s")
            params.append(database)
        if application_name is not None:
            clauses.append("application_name like %s")
            params.append(application_name)
        if pids is not None:
            clauses.append("pid = any(%s)")
            params.append(pids)
        sql = f"select pid from pg_stat_activity where {' and '.join(clauses)}"
        with self.admin() as conn:
            targets = [row[0] for row in conn.execute(sql, params).fetchall()]  # type: ignore[arg-type]
            for pid in targets:
                conn.execute("select pg_terminate_backend(%s)", (pid,))
        return targets

    def query(
        self, sql: str, params: tuple[object, ...] = (), database: str = "river", plain: bool = False
    ) -> list[dict[str, Any]]:
        """Rows as dicts, on a connection of its own (the cluster may have restarted since the last).

        The harness's sessions may write while the cluster is read-only, unless ``plain``.
        """
        with psycopg.connect(
            self.url(database),
            autocommit=True,
            connect_timeout=5,
            row_factory=dict_row,
            application_name="test-harness",
            options="" if plain else "-c default_transaction_read_only=off",
        ) as conn:
            return conn.execute(sql, params).fetchall()  # type: ignore[arg-type]

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return "--- no server log ---"
        return "--- private PostgreSQL log tail ---\n" + "\n".join(text)


def remove_leftovers() -> None:
    """Stop and delete clusters of earlier test runs whose process is gone (a crashed or killed run)."""
    for path in Path(tempfile.gettempdir()).glob(f"{DIR_PREFIX}*"):
        try:
            owner = int(path.name[len(DIR_PREFIX) :].split("-", 1)[0])
        except ValueError:
            continue
        if owner == os.getpid() or pid_alive(owner):
            continue
        PrivatePostgres(path, 0).remove()


# -- pytest fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def _private_postgres_template() -> Iterator[PrivatePostgres]:
    """One ``initdb`` per session, with a migrated ``river`` database; tests get copies of it."""
    reason = available()
    if reason is not None:
        pytest.skip(f"no private PostgreSQL cluster: {reason}")
    template = PrivatePostgres.initdb()
    try:
        template.start()
        template.create_database("river", migrate=True)
        template.stop("fast")
        yield template
    finally:
        template.remove()


@pytest.fixture
def private_postgres(_private_postgres_template: PrivatePostgres) -> Iterator[PrivatePostgres]:
    """A running private cluster of this test's own, with a migrated database at ``.url("river")``.

    Restart, freeze, make read-only or kill its sessions at will; teardown removes it, frozen or not.
    """
    cluster = _private_postgres_template.copy()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.remove()


@pytest.fixture
def private_supervisors(private_postgres: PrivatePostgres, tmp_path: Path) -> Iterator[SupervisorFactory]:
    """Supervisors on the private cluster's ``river`` database (see ``supervisors`` for the shared one)."""
    factory = SupervisorFactory(private_postgres.url("river"), tmp_path)
    try:
        yield factory
    finally:
        private_postgres.thaw()  # a test that failed while frozen: let the supervisors' teardown run
        survivors = factory.cleanup()
    assert not survivors, "; ".join(survivors)
