"""SIGHUP: read the configuration file and the installed plugins again, without dropping work.

What a reload changes, and how (the supervisor drives it; see ``Supervisor._reload``)
    ``read`` loads the file with the same flags and environment as at start, forgets the plugin
    modules the parent imported and discovers the plugins again (a plugin upgraded in place is
    imported afresh), and builds the new schedules and fingerprint. Anything wrong (a file that
    does not parse, a bad value, two plugins claiming one kind) raises the one-line error the CLI
    would print, and nothing has changed yet: the running configuration is kept.

    Then the supervisor retires the running forkserver (``retire_forkserver``): the next worker
    start launches a new one preloading the new plugin set, while the old one lives on until the
    last old worker has exited (``RetiredForkserver.close``). Old workers are told to stop
    fetching; they finish their running jobs and exit. The leader-only services are rebuilt with
    the new schedules (``Duties.reload``) and the node's fingerprint is published again.

What needs a restart
    ``FIXED`` settings (the database, the cluster and node identity, the lease, Sentry and the
    metrics endpoint) belong to connections and threads that live as long as the process. A
    reload that changes one logs a warning naming it and keeps the running value.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import os
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from multiprocess import forkserver

from . import discovery, manifest
from .config import Config
from .discovery import PluginSet
from .manifest import LocalManifest

FIXED = ("database_url", "embedded_dir", "cluster", "node", "leadership", "sentry", "metrics")
OWN_PACKAGE = __name__.split(".")[0]  # river_supervisor ships a plugin itself (bench): never forgotten
FORKSERVER_EXIT_WAIT = 2.0


@dataclass(frozen=True, slots=True)
class Reloaded:
    cfg: Config
    plugin_set: PluginSet
    local: LocalManifest
    kept: tuple[str, ...]  # FIXED settings the file changed; they take effect at the next restart


def read(current: Config, load_config: Callable[[], Config], plugin_modules: Iterable[str]) -> Reloaded:
    """The new configuration, plugins and schedules; raises ``RiverSupervisorError`` (one line)."""
    new = load_config()
    kept = tuple(name for name in FIXED if getattr(new, name) != getattr(current, name))
    new = dataclasses.replace(new, **{name: getattr(current, name) for name in FIXED})
    forget_modules(plugin_modules)
    plugin_set = discovery.discover(new.plugins)
    plugin_set.raise_for_conflicts()
    local = manifest.local_manifest(new, plugin_set)
    return Reloaded(new, plugin_set, local, kept)


def forget_modules(top_level: Iterable[str]) -> None:
    """Drop the plugins' modules from ``sys.modules`` so the next import reads them from disk.

    Objects already made from them (the old plugin set) keep working; the old workers run in
    their own processes and are not touched.
    """
    names = {name for name in top_level if name and name != OWN_PACKAGE}
    for loaded in list(sys.modules):
        if loaded.split(".")[0] in names:
            del sys.modules[loaded]
    importlib.invalidate_caches()  # new files and dist-info folders are seen


@dataclass(slots=True)
class RetiredForkserver:
    """A forkserver the next worker start no longer uses; it serves its workers until ``close``."""

    pid: int
    alive_fd: int
    address: Any

    def close(self) -> None:
        """Let it exit (it does when this end of its "alive" pipe closes) and collect it."""
        with contextlib.suppress(OSError):
            os.close(self.alive_fd)
        if isinstance(self.address, str) and not self.address.startswith("\0"):  # not Linux's abstract
            with contextlib.suppress(OSError):
                os.unlink(self.address)
        deadline = time.monotonic() + FORKSERVER_EXIT_WAIT
        while time.monotonic() < deadline:
            try:
                pid, _ = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # already collected (or never our child)
                return
            if pid:
                return
            time.sleep(0.01)


def retire_forkserver(preload: list[str]) -> RetiredForkserver | None:
    """Detach the running forkserver so that the next start launches a new one preloading ``preload``.

    multiprocess keeps one forkserver per process in a module-level object and starts it again
    only when it has none: clearing its fields (under its lock) makes the next start launch a
    new one, while the old process, its socket and its workers stay as they are. These are
    private fields of multiprocess 0.70 (the standard library's are the same); if they change,
    this fails loudly in tests/process/test_reload.py.
    """
    server = forkserver._forkserver
    with server._lock:
        retired = None
        if server._forkserver_pid is not None:
            retired = RetiredForkserver(
                server._forkserver_pid, server._forkserver_alive_fd, server._forkserver_address
            )
        server._forkserver_pid = server._forkserver_alive_fd = server._forkserver_address = None
    server.set_forkserver_preload(list(preload))
    return retired
