"""A database of our own per test run, created from TEST_DATABASE_URL and dropped.

Never DATABASE_URL: that names the application's (maybe production) database, and the suite creates
and force-drops databases on the server it points at.
"""

from __future__ import annotations

import os
import secrets
from urllib.parse import urlsplit, urlunsplit

import psycopg

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432"
PREFIX = "rs_test_"


def base_url() -> str:
    return os.environ.get("TEST_DATABASE_URL") or DEFAULT_URL


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def admin_url() -> str:
    url = base_url()
    return url if urlsplit(url).path.strip("/") else with_database(url, "postgres")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def drop_leftovers(conn: psycopg.Connection) -> None:
    """Drop databases of crashed earlier runs (their creating pid is gone)."""
    rows = conn.execute("select datname from pg_database where datname like %s", (PREFIX + "%",)).fetchall()
    for (name,) in rows:
        try:
            pid = int(name[len(PREFIX) :].split("_", 1)[0])
        except ValueError:
            continue
        if not pid_alive(pid):
            conn.execute(f'drop database if exists "{name}" with (force)')


def create_database(template: str | None = None) -> str:
    name = f"{PREFIX}{os.getpid()}_{secrets.token_hex(4)}"
    with psycopg.connect(admin_url(), autocommit=True) as conn:
        drop_leftovers(conn)
        suffix = f' template "{template}"' if template else ""
        conn.execute(f'create database "{name}"{suffix}')
    return name


def drop_database(name: str) -> None:
    with psycopg.connect(admin_url(), autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')
