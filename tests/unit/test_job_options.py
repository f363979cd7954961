"""One queue-name rule (River's), applied alike by the config file, plugin declarations and inserts."""

from __future__ import annotations

from pathlib import Path

import pytest
from river_supervisor import config
from river_supervisor.errors import ConfigError, UsageError
from river_supervisor.insert import JobSpec
from river_supervisor.job_options import is_valid_kind, is_valid_queue_name
from river_supervisor.plugins import DeclarationError, Plugin

# River's own cases (riverqueue/river client_test.go) and the ones that used to split our three rules.
NAMES = {
    "default": True,
    "some_awesome_3rd_queue_namezzz": True,
    "with-hyphens": True,
    "a" * 64: True,
    "a" * 65: False,  # River: at most 64 characters (a plugin used to accept 128)
    "": False,
    "Reports": False,  # upper case: `enqueue --queue Reports` used to be accepted
    "a__b": False,
    "_lead": False,
    "trail-": False,
    "has space": False,
    "dots.in.name": False,
}


def _config_accepts(name: str, tmp_path: Path) -> bool:
    path = tmp_path / "river-supervisor.toml"
    path.write_text(f'[queues."{name}"]\nconcurrency = 1\n', encoding="utf-8")
    try:
        config.load(str(path), environ={})
    except ConfigError:
        return False
    return True


def _plugin_accepts(name: str) -> bool:
    try:
        Plugin("p").job("p.kind", queue=name)
    except DeclarationError:
        return False
    return True


def _insert_accepts(name: str) -> bool:
    try:
        JobSpec("p.kind", queue=name).validate()
    except UsageError:
        return False
    return True


@pytest.mark.parametrize(("name", "valid"), NAMES.items(), ids=lambda v: repr(v)[:20])
def test_config_plugins_and_inserts_share_rivers_queue_name_rule(
    name: str, valid: bool, tmp_path: Path
) -> None:
    assert is_valid_queue_name(name) is valid
    seen = {
        "config": _config_accepts(name, tmp_path),
        "plugin": _plugin_accepts(name),
        "insert": _insert_accepts(name),
    }
    assert seen == dict.fromkeys(seen, valid)


def test_a_refused_queue_names_the_rule() -> None:
    with pytest.raises(UsageError, match=r"queue: 'Reports' is not a valid queue name \(lower-case letters"):
        JobSpec("p.kind", queue="Reports").validate()


@pytest.mark.parametrize(
    ("kind", "valid"),
    [("billing.charge", True), ("a:b[1]", True), ("x", False), ("has space", False), ("é.kind", False)],
)
def test_plugins_and_inserts_share_rivers_kind_rule(kind: str, valid: bool) -> None:
    assert is_valid_kind(kind) is valid
    with_plugin = _declares(kind)
    try:
        JobSpec(kind).validate()
        with_insert = True
    except UsageError:
        with_insert = False
    assert (with_plugin, with_insert) == (valid, valid)


def _declares(kind: str) -> bool:
    try:
        Plugin("p").job(kind)
    except DeclarationError:
        return False
    return True
