"""Discovery over given entry points (no installation): load errors, conflicts, enable/disable.

The real thing (pip-installed distributions, stevedore's cache) is tests/integration/test_plugin_discovery.py.
"""

from __future__ import annotations

import importlib.metadata
import sys
import textwrap
import uuid

import pytest
from river_supervisor.commands.plugins import render
from river_supervisor.config import PluginsConfig
from river_supervisor.discovery import GROUP, discover
from river_supervisor.errors import PluginConflict


@pytest.fixture
def make_ep(tmp_path, monkeypatch):
    """Write a module with ``source`` and return an entry point ``name = module:attr`` for it."""
    monkeypatch.syspath_prepend(str(tmp_path))
    created = []

    def make(name: str, source: str, attr: str = "plugin") -> importlib.metadata.EntryPoint:
        module = f"rs_unit_{name.replace('-', '_')}_{uuid.uuid4().hex[:8]}"
        (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))
        created.append(module)
        return importlib.metadata.EntryPoint(name=name, value=f"{module}:{attr}", group=GROUP)

    yield make
    for module in created:
        sys.modules.pop(module, None)


GOOD = """
    from river_supervisor import Plugin
    plugin = Plugin("{name}")

    @plugin.job("{kind}")
    def handler(job):
        return "{name}"

    plugin.periodic("{kind}", id="{name}-every-minute", every=60)
"""


def good(make_ep, name: str, kind: str) -> importlib.metadata.EntryPoint:
    return make_ep(name, GOOD.format(name=name, kind=kind))


def test_good_plugins_give_handlers_and_schedules(make_ep):
    found = discover(entry_points=[good(make_ep, "beta", "beta.run"), good(make_ep, "alpha", "alpha.run")])
    assert [row.name for row in found.plugins] == ["alpha", "beta"]
    assert found.ok
    entry = found.handlers["alpha.run"]
    assert entry.plugin == "alpha" and entry.handler(None) == "alpha"
    assert [decl.id for decl in found.periodic] == ["alpha-every-minute", "beta-every-minute"]
    assert found.to_json()["plugins"][0]["kinds"] == ["alpha.run"]


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("raise RuntimeError('boom at import')\n", "RuntimeError: boom at import (at "),
        (
            "import rs_no_such_module_anywhere\n",
            "ModuleNotFoundError: No module named 'rs_no_such_module_anywhere'",
        ),
        ("import sys\nsys.exit(3)\n", "SystemExit: 3"),
        ("assert False, 'plugin asserts'\n", "AssertionError: plugin asserts"),
        (
            "from river_supervisor import Plugin\nplugin = Plugin('broken')\n"
            "plugin.job('broken.x', max_attempts=0)\n",
            "DeclarationError: plugin broken: job 'broken.x': max_attempts must be an integer >= 1, got 0",
        ),
        ("plugin = object()\n", "is object"),
        (
            "from river_supervisor import Plugin\nplugin = Plugin('other')\n",
            "differs from its Plugin's name 'other'",
        ),
    ],
)
def test_a_broken_plugin_is_reported_and_the_others_load(make_ep, source, expected):
    found = discover(entry_points=[make_ep("broken", source), good(make_ep, "alpha", "alpha.run")])
    rows = {row.name: row for row in found.plugins}
    assert rows["alpha"].error is None and "alpha.run" in found.handlers
    assert rows["broken"].plugin is None
    assert expected in rows["broken"].error
    assert [error.name for error in found.errors] == ["broken"]
    assert found.to_json()["plugins"][1]["error"] == rows["broken"].error


def test_two_plugins_claiming_one_kind_is_a_conflict_naming_both(make_ep):
    found = discover(
        entry_points=[good(make_ep, "alpha", "shared.kind"), good(make_ep, "beta", "shared.kind")]
    )
    assert len(found.conflicts) == 1
    message = str(found.conflicts[0])
    assert "'shared.kind'" in message and "'alpha'" in message and "'beta'" in message
    assert found.handlers["shared.kind"].plugin == "alpha"
    with pytest.raises(PluginConflict):
        found.raise_for_conflicts()


def test_two_plugins_declaring_one_periodic_id_is_a_conflict(make_ep):
    source = """
        from river_supervisor import Plugin
        plugin = Plugin("{name}")
        plugin.periodic("shell.run", id="nightly", cron="0 3 * * *")
    """
    found = discover(
        entry_points=[make_ep("one", source.format(name="one")), make_ep("two", source.format(name="two"))]
    )
    assert [str(c) for c in found.conflicts] == [
        "periodic id 'nightly' is declared by plugins 'one' and 'two'; disable one of them in [plugins]"
    ]


def test_disabled_plugins_are_listed_but_never_imported(make_ep):
    broken = make_ep("broken", "raise RuntimeError('must not be imported')\n")
    found = discover(
        PluginsConfig(disabled=("broken",)), entry_points=[broken, good(make_ep, "alpha", "a.run")]
    )
    rows = {row.name: row for row in found.plugins}
    assert rows["broken"].enabled is False and rows["broken"].error is None
    assert found.ok


def test_enabled_list_loads_only_those_and_reports_missing_ones(make_ep):
    eps = [good(make_ep, "alpha", "a.run"), good(make_ep, "beta", "b.run")]
    found = discover(PluginsConfig(enabled=("beta", "gamma")), entry_points=eps)
    rows = {row.name: row for row in found.plugins}
    assert rows["alpha"].enabled is False and "a.run" not in found.handlers
    assert "b.run" in found.handlers
    assert rows["gamma"].error == "enabled in the configuration but not installed"


def test_human_listing_is_an_aligned_table_with_errors_below(make_ep):
    found = discover(
        entry_points=[good(make_ep, "alpha", "alpha.run"), make_ep("broken", "raise ValueError('x')")]
    )
    text = render(found.to_json())
    lines = text.splitlines()
    assert lines[0].split() == ["NAME", "DISTRIBUTION", "VERSION", "STATUS", "KINDS", "PERIODIC"]
    assert lines[1].split()[:5] == ["alpha", "-", "-", "ok", "alpha.run"]
    assert lines[0].index("KINDS") == lines[1].index("alpha.run")
    assert "errors:" in lines and any(line.startswith("  broken: ValueError: x") for line in lines)


def test_one_plugin_name_from_two_entry_points_loads_neither(make_ep):
    found = discover(entry_points=[good(make_ep, "alpha", "a.run"), good(make_ep, "alpha", "a.other")])
    (row,) = found.plugins
    assert row.plugin is None and "published by two distributions" in row.error
    assert not found.handlers
