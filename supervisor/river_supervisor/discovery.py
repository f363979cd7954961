"""Find installed plugins (entry-point group ``river_supervisor.plugins``) and load them.

``discover(cfg_plugins)`` returns a ``PluginSet``: one ``LoadedPlugin`` report row per entry point
(name, distribution, version, the ``Plugin`` or None, error text), the handler table by job
kind, the plugins' schedules, the load errors and the conflicts. It never raises for a bad
plugin: a plugin that fails to import (whatever it raises, ``SystemExit`` and ``AssertionError``
included) or whose object is not a ``Plugin`` is reported and the rest load. Two plugins claiming
one job kind or one periodic id are a ``PluginConflict`` each, kept in ``.conflicts``; the caller
decides (``run`` refuses to start, ``plugins`` shows them and exits 1).

Nothing here is pickled: the parent and each worker (a forkserver child) call ``discover``
themselves, and must find the same thing because they read the same installation.

Entry points are read with ``importlib.metadata`` on every call, then loaded by stevedore's
``ExtensionManager`` (failure callback, no ``invoke_on_load``). We deliberately bypass stevedore's
own entry-point lists:

- its on-disk cache (``~/.cache/python-entrypoints``) is keyed on file mtimes packed as 32-bit
  floats, i.e. rounded to 128 s, so reinstalling a plugin at the same version with changed entry
  points within about two minutes reuses the stale list (measured in notes/ecosystem.md 1.4, and
  caught by tests/integration/test_plugin_discovery.py, which fails with a plain
  ``ExtensionManager``);
- its class-level ``ENTRY_POINT_CACHE`` never invalidates within a process;
- its cached entry points lose ``.dist``, which we need for the distribution and version.

Reading the metadata directly costs about 2 ms; the cache buys nothing at our size.
"""

from __future__ import annotations

import importlib.metadata
import traceback
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from .errors import PluginConflict, PluginLoadError
from .plugins import Handler, JobOptions, PeriodicDecl, Plugin

GROUP = "river_supervisor.plugins"


class RegisteredHandler(NamedTuple):
    plugin: str
    handler: Handler
    options: JobOptions


@dataclass(frozen=True, slots=True)
class LoadedPlugin:
    """One row of the load report."""

    name: str
    distribution: str | None
    version: str | None
    plugin: Plugin | None = None
    error: str | None = None
    enabled: bool = True
    entry_point: str | None = None  # "module:attr"

    @property
    def kinds(self) -> list[str]:
        return self.plugin.kinds if self.plugin is not None else []

    @property
    def periodic(self) -> list[PeriodicDecl]:
        return self.plugin.periodic_decls if self.plugin is not None else []

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "kinds": self.kinds,
            "periodic": [decl.to_dict() for decl in self.periodic],
            "error": self.error,
            "enabled": self.enabled,
            "entry_point": self.entry_point,
        }


@dataclass(frozen=True, slots=True)
class PluginSet:
    plugins: tuple[LoadedPlugin, ...] = ()
    handlers: Mapping[str, RegisteredHandler] = field(default_factory=dict)
    periodic: tuple[PeriodicDecl, ...] = ()
    errors: tuple[PluginLoadError, ...] = ()
    conflicts: tuple[PluginConflict, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.errors and not self.conflicts

    @property
    def modules(self) -> tuple[str, ...]:
        """Top-level modules of the loaded plugins (what a worker imports; already imported here)."""
        names = {
            row.entry_point.split(":")[0].split(".")[0]
            for row in self.plugins
            if row.plugin is not None and row.entry_point is not None
        }
        return tuple(sorted(name for name in names if name))

    def handler(self, kind: str) -> RegisteredHandler | None:
        return self.handlers.get(kind)

    def raise_for_conflicts(self) -> None:
        """For ``run``: a conflict is ambiguous work, so refuse to start on the first one."""
        if self.conflicts:
            raise self.conflicts[0]

    def to_json(self) -> dict[str, Any]:
        """``plugins --json``: DESIGN.md's shape, plus ``conflicts``."""
        return {
            "plugins": [row.to_dict() for row in self.plugins],
            "conflicts": [str(conflict) for conflict in self.conflicts],
        }


class _EntryPoint:
    """An importlib entry point whose ``load()`` turns any failure into an ``Exception``.

    stevedore re-raises ``AssertionError`` and lets ``SystemExit`` through; a plugin doing either at
    import must be reported like any other broken plugin, never take down discovery (or the
    forkserver that preloads the worker, see notes/ecosystem.md 2.2).
    """

    def __init__(self, ep: importlib.metadata.EntryPoint) -> None:
        self.ep = ep
        self.name = ep.name
        self.value = ep.value
        self.group = ep.group
        self.module = ep.module
        self.attr = ep.attr
        self.dist = ep.dist

    def load(self) -> Any:
        try:
            return self.ep.load()
        except KeyboardInterrupt:
            raise
        except BaseException as exc:
            raise _ImportFailed(exc) from exc


class _ImportFailed(Exception):
    def __init__(self, original: BaseException) -> None:
        super().__init__(str(original))
        self.original = original


def _manager(entry_points: list[_EntryPoint], on_failure: Any) -> Any:
    from stevedore import ExtensionManager

    class FreshExtensionManager(ExtensionManager):  # type: ignore[type-arg]
        """stevedore's loader over the entry points we read ourselves (see the module docstring)."""

        def list_entry_points(self) -> list[Any]:
            return list(entry_points)

    return FreshExtensionManager(GROUP, invoke_on_load=False, on_load_failure_callback=on_failure)


def _describe(exc: BaseException) -> str:
    """``RuntimeError: boom (at my_plugin/__init__.py:12)``: the error and where it was raised."""
    original = exc.original if isinstance(exc, _ImportFailed) else exc
    text = f"{type(original).__name__}: {original}" if str(original) else type(original).__name__
    frames = traceback.extract_tb(original.__traceback__)
    if frames:
        last = frames[-1]
        text += f" (at {last.filename}:{last.lineno})"
    return text


def _dist_of(ep: Any) -> tuple[str | None, str | None]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return None, None
    return dist.metadata["Name"], dist.version


def read_entry_points() -> list[importlib.metadata.EntryPoint]:
    """The group's entry points, straight from the installed metadata, sorted by name."""
    return sorted(importlib.metadata.entry_points(group=GROUP), key=lambda ep: (ep.name, ep.value))


def discover(
    cfg_plugins: Any = None,
    *,
    entry_points: Iterable[importlib.metadata.EntryPoint] | None = None,
) -> PluginSet:
    """Load the enabled plugins and report on every one found.

    ``cfg_plugins`` is ``Config.plugins`` (``enabled``: None for all, or a tuple of names;
    ``disabled``: names never imported). ``entry_points`` replaces the installed ones (tests).
    """
    enabled = getattr(cfg_plugins, "enabled", None)
    disabled = set(getattr(cfg_plugins, "disabled", ()) or ())
    eps = read_entry_points() if entry_points is None else list(entry_points)

    rows: dict[str, LoadedPlugin] = {}
    to_load: list[_EntryPoint] = []
    seen: dict[str, importlib.metadata.EntryPoint] = {}
    for ep in eps:
        dist, version = _dist_of(ep)
        if ep.name in seen:
            # Two distributions publish one plugin name: load neither, say which.
            other_dist, _ = _dist_of(seen[ep.name])
            message = f"plugin name published by two distributions: {other_dist} and {dist}"
            rows[ep.name] = LoadedPlugin(ep.name, other_dist, None, error=message, entry_point=ep.value)
            to_load = [item for item in to_load if item.name != ep.name]
            continue
        seen[ep.name] = ep
        is_enabled = ep.name not in disabled and (enabled is None or ep.name in enabled)
        rows[ep.name] = LoadedPlugin(ep.name, dist, version, enabled=is_enabled, entry_point=ep.value)
        if is_enabled:
            to_load.append(_EntryPoint(ep))
    for name in enabled or ():
        if name not in rows:
            message = "enabled in the configuration but not installed"
            rows[name] = LoadedPlugin(name, None, None, error=message)

    failures: dict[str, str] = {}

    def on_failure(_manager: Any, ep: Any, exc: BaseException) -> None:
        failures[ep.name] = _describe(exc)

    manager = _manager(to_load, on_failure)
    for ext in manager.extensions:
        row = rows[ext.name]
        obj = ext.plugin
        if not isinstance(obj, Plugin):
            failures[ext.name] = (
                f"entry point {ext.name} = {ext.entry_point.value} is {type(obj).__name__}"
                f" {obj!r:.60}, not a river_supervisor.Plugin"
            )
        elif obj.name != ext.name:
            failures[ext.name] = (
                f"entry point name {ext.name!r} differs from its Plugin's name {obj.name!r}"
                " (they must be equal: configuration enables and disables plugins by name)"
            )
        else:
            rows[ext.name] = LoadedPlugin(
                row.name, row.distribution, row.version, plugin=obj, entry_point=row.entry_point
            )
    for name, message in failures.items():
        row = rows[name]
        rows[name] = LoadedPlugin(
            name, row.distribution, row.version, error=message, entry_point=row.entry_point
        )

    ordered = tuple(rows[name] for name in sorted(rows))
    errors = [PluginLoadError(r.name, r.distribution, r.error) for r in ordered if r.error is not None]
    handlers, periodic, conflicts = _combine([r.plugin for r in ordered if r.plugin is not None])
    return PluginSet(
        plugins=ordered,
        handlers=handlers,
        periodic=tuple(periodic),
        errors=tuple(errors),
        conflicts=tuple(conflicts),
    )


def _combine(
    plugins: list[Plugin],
) -> tuple[dict[str, RegisteredHandler], list[PeriodicDecl], list[PluginConflict]]:
    """Merge the plugins' declarations (in name order); the first claim of a kind or id stays."""
    handlers: dict[str, RegisteredHandler] = {}
    periodic: dict[str, PeriodicDecl] = {}
    conflicts: list[PluginConflict] = []
    for plugin in plugins:
        for kind, decl in sorted(plugin.jobs.items()):
            if kind in handlers:
                conflicts.append(
                    PluginConflict(
                        f"job kind {kind!r} is claimed by plugins {handlers[kind].plugin!r} and"
                        f" {plugin.name!r}; disable one of them in [plugins]"
                    )
                )
                continue
            handlers[kind] = RegisteredHandler(plugin.name, decl.handler, decl.options)
        for periodic_decl in plugin.periodic_decls:
            if periodic_decl.id in periodic:
                conflicts.append(
                    PluginConflict(
                        f"periodic id {periodic_decl.id!r} is declared by plugins"
                        f" {periodic[periodic_decl.id].plugin!r} and {plugin.name!r}; disable one of them"
                        " in [plugins]"
                    )
                )
                continue
            periodic[periodic_decl.id] = periodic_decl
    return handlers, list(periodic.values()), conflicts
