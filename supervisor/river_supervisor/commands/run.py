"""``river-supervisor run``: the supervisor (see ``supervisor.py``)."""

from __future__ import annotations

import argparse
import dataclasses

from .. import config as config_mod
from ..supervisor import Supervisor


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--processes", type=int, metavar="N", help="worker processes (default: CPU count)")
    parser.add_argument("--node", metavar="NAME", help="this node's name (default: the host name)")
    parser.add_argument("--cluster", metavar="NAME", help="leadership namespace (default: default)")


def run(args: argparse.Namespace) -> int:
    def load() -> config_mod.Config:  # at start, and again on SIGHUP: same file, flags and environment
        return config_mod.load(args.config, flags=config_mod.flag_values(args))

    cfg = load()
    log_level = args.log_level or ("DEBUG" if args.debug else "INFO")
    if not cfg.database_url:
        from .. import embedded

        with embedded.for_run(cfg) as cfg:  # stops the embedded server on the way out
            url = cfg.database_url

            def load_embedded() -> config_mod.Config:
                return dataclasses.replace(load(), database_url=url)

            return Supervisor(
                cfg, log_level=log_level, log_format=args.log_format, load_config=load_embedded
            ).run()
    return Supervisor(cfg, log_level=log_level, log_format=args.log_format, load_config=load).run()
