"""This host's manifest: its effective schedules and plugin versions, fingerprinted.

The supervisor publishes it when it registers its node; ``check`` compares it with the live
cluster's; ``status`` uses it for this host's view of the schedules. One function computes it,
so the three can never disagree about what "this host's configuration" is.

What goes in
    - every effective schedule (plugin declarations merged with ``[[periodic]]`` entries, every
      default resolved, disabled ones left out), with the fields that decide what is enqueued
      and when (``EffectiveSchedule.definition``);
    - every plugin that loaded, keyed by its distribution name (the thing a deploy pins) with
      its version; a plugin without distribution metadata is keyed by its plugin name. Plugins
      that failed to load or are disabled are not in it: they run nothing here.

Strict and tolerant
    ``local_manifest`` is strict: a bad schedule raises ``ConfigError`` (``run`` refuses to start,
    exit 2). ``check`` wants every bad schedule reported, not only the first, so
    ``effective_schedules_tolerant`` resolves each schedule on its own, reports the bad ones as
    problems and fingerprints the rest.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .config import Config
from .discovery import PluginSet
from .drift import fingerprint
from .errors import ConfigError
from .schedules import EffectiveSet, effective_schedules


@dataclass(frozen=True, slots=True)
class LocalManifest:
    """``digest`` and ``manifest`` as ``drift.fingerprint`` makes them, and the schedules behind them."""

    digest: str
    manifest: dict[str, Any]
    schedules: EffectiveSet


def plugin_versions(plugin_set: PluginSet) -> dict[str, str | None]:
    """``{distribution (else plugin name): version}`` of the plugins that loaded."""
    return {
        (row.distribution or row.name): row.version
        for row in plugin_set.plugins
        if row.plugin is not None and row.enabled and row.error is None
    }


def job_kinds(plugin_set: PluginSet) -> dict[str, Any]:
    """``{kind: JobOptions}`` of the handlers on this host (what ``effective_schedules`` wants)."""
    return {kind: registered.options for kind, registered in plugin_set.handlers.items()}


def effective_schedules_strict(cfg: Config, plugin_set: PluginSet) -> EffectiveSet:
    """This host's schedules; raises ``ConfigError`` at the first bad one, and for a schedule of
    a kind no plugin here provides: a leader would enqueue jobs no host may be able to run."""
    found = effective_schedules(plugin_set.periodic, cfg.periodic, kinds=job_kinds(plugin_set), path=cfg.path)
    for problem in found.problems:
        raise ConfigError(
            cfg.path, None, f"{problem['message']} (install its plugin, fix the kind or set enabled = false)"
        )
    return found


def effective_schedules_tolerant(cfg: Config, plugin_set: PluginSet) -> EffectiveSet:
    """This host's schedules, with every bad one left out and reported in ``problems`` as
    ``{"kind": "periodic_invalid", "id", "message"}`` (besides ``periodic_kind_unknown``)."""
    try:
        return effective_schedules_strict(cfg, plugin_set)
    except ConfigError:
        pass
    kinds = job_kinds(plugin_set)
    ids = sorted({decl.id for decl in plugin_set.periodic} | {entry.id for entry in cfg.periodic})
    bad: dict[str, str] = {}
    for schedule_id in ids:
        try:
            effective_schedules(
                _with_id(plugin_set.periodic, schedule_id),
                _with_id(cfg.periodic, schedule_id),
                kinds=kinds,
                path=cfg.path,
            )
        except ConfigError as exc:
            bad[schedule_id] = str(exc)
    good = effective_schedules(
        [decl for decl in plugin_set.periodic if decl.id not in bad],
        [entry for entry in cfg.periodic if entry.id not in bad],
        kinds=kinds,
        path=cfg.path,
    )
    invalid = tuple(
        {"kind": "periodic_invalid", "id": schedule_id, "message": message}
        for schedule_id, message in bad.items()
    )
    return EffectiveSet(good.schedules, good.disabled, invalid + good.problems)


def _with_id(items: Iterable[Any], schedule_id: str) -> list[Any]:
    return [item for item in items if item.id == schedule_id]


def manifest_of(schedules: EffectiveSet, versions: Mapping[str, str | None]) -> LocalManifest:
    digest, manifest = fingerprint(schedules.schedules, versions)
    return LocalManifest(digest, manifest, schedules)


def local_manifest(cfg: Config, plugin_set: PluginSet, *, tolerant: bool = False) -> LocalManifest:
    """This host's fingerprint, manifest and effective schedules.

    Strict by default (a bad schedule raises ``ConfigError``); ``tolerant=True`` leaves bad
    schedules out of the manifest and lists them in ``schedules.problems`` instead.
    """
    resolve = effective_schedules_tolerant if tolerant else effective_schedules_strict
    return manifest_of(resolve(cfg, plugin_set), plugin_versions(plugin_set))
