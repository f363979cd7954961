"""``river-supervisor migrate``: create or upgrade River's schema and our own tables."""

from __future__ import annotations

import argparse
import json

from .. import config as config_mod
from .. import db, schema


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print what was applied as JSON")


def database_url_or_fail(cfg: config_mod.Config) -> str:
    """The configured database, else the embedded one if it exists (see ``embedded``), else UsageError."""
    if cfg.database_url:
        return cfg.database_url
    from .. import embedded

    return embedded.database_url_or_embedded(cfg)


def run(args: argparse.Namespace) -> int:
    cfg = config_mod.load(args.config, flags={"database_url": args.database_url})
    url = database_url_or_fail(cfg)
    with db.connect(url, application_name="river-supervisor migrate") as conn:
        applied = schema.migrate(conn, log_steps=False)  # each step is printed below, once
    if args.json:
        print(
            json.dumps({"applied": [{"line": a.line, "version": a.version, "name": a.name} for a in applied]})
        )
    elif applied:
        for a in applied:
            print(f"applied {a.line} {a.version:03d} {a.name}")
    else:
        print("schema is up to date")
    return 0
