"""``reload.read``: what a SIGHUP takes from the file, and what waits for a restart."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from river_supervisor import config, reload
from river_supervisor.errors import ConfigError


def _loader(path: Path):
    return lambda: config.load(str(path), environ={})


def test_a_reload_applies_the_file_but_keeps_what_needs_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "river-supervisor.toml"
    path.write_text(
        'database_url = "postgresql://a@db/a"\ncluster = "one"\nprocesses = 1\n[plugins]\nenabled = []\n'
    )
    current = config.load(str(path), environ={})
    path.write_text(
        'database_url = "postgresql://b@db/b"\ncluster = "two"\nprocesses = 3\n[plugins]\nenabled = []\n'
    )
    new = reload.read(current, _loader(path), ())
    assert new.cfg.processes == 3
    assert (new.cfg.database_url, new.cfg.cluster) == ("postgresql://a@db/a", "one")
    assert new.kept == ("database_url", "cluster")


def test_a_file_that_does_not_load_raises_the_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "river-supervisor.toml"
    path.write_text("processes = 1\n")
    current = config.load(str(path), environ={})
    path.write_text("processes = [\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        reload.read(current, _loader(path), ())


def test_forgetting_plugin_modules_never_forgets_river_supervisor() -> None:
    sys.modules["rs_forget_me"] = type(sys)("rs_forget_me")
    sys.modules["rs_forget_me.sub"] = type(sys)("rs_forget_me.sub")
    reload.forget_modules(["rs_forget_me", "river_supervisor"])
    assert "rs_forget_me" not in sys.modules and "rs_forget_me.sub" not in sys.modules
    assert "river_supervisor.reload" in sys.modules
