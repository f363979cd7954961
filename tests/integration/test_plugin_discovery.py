"""Plugins installed with pip are discovered; uninstalled ones vanish; a same-version reinstall is seen.

Everything happens in a throwaway venv (never the development venv, which others use at the same
time). The venv sees the development venv's packages through a ``.pth`` file (so river-supervisor
and its dependencies need no install) and gets its own ``setuptools`` to build the test
distributions of ``tests/plugins/`` without build isolation.

The stevedore cache trap (notes/ecosystem.md 1.4): stevedore caches entry points on disk under
``$XDG_CACHE_HOME/python-entrypoints``, keyed on mtimes rounded to 128 s, and never writes that
cache for an interpreter under ``/tmp`` (it still reads one). The venv lives in the repository's
``.pytest_cache`` (ignored by git, removed afterwards), which is under ``/tmp`` in a clone there, so
the priming run switches that one rule off (``ARM_STEVEDORE_CACHE``) and writes the cache as a
stevedore user running any other Python would; ``XDG_CACHE_HOME`` points at a private folder, and
the reinstall happens within seconds: a discovery that trusted stevedore's cache would list the old
entry points and fail ``test_same_version_reinstall_with_new_entry_point_is_seen``, wherever the
clone is.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TEST_DISTS = REPO / "tests" / "plugins"
# stevedore writes no cache when sys.executable starts with "/tmp" (stevedore/_cache.py); the trap
# must be armed in a clone under /tmp too, so the priming run lifts that rule for itself.
ARM_STEVEDORE_CACHE = "import stevedore._cache as cache; cache._c._disable_caching = False;"


@dataclass
class Venv:
    root: Path
    python: Path
    cache: Path  # XDG_CACHE_HOME for discovery runs
    work: Path  # scratch: copies of distributions to build, the working directory of commands

    def pip(self, *args: str) -> None:
        cmd = [sys.executable, "-m", "pip", "--python", str(self.python), "--disable-pip-version-check", "-q"]
        result = subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, f"pip {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"

    def install(self, *sources: Path, force: bool = False) -> None:
        # Build from copies: setuptools writes build/ and *.egg-info next to the sources.
        copies = []
        for source in sources:
            copy = self.work / f"{source.name}-{uuid.uuid4().hex[:8]}"
            shutil.copytree(source, copy)
            copies.append(str(copy))
        force_args = ["--force-reinstall"] if force else []
        self.pip("install", "--no-deps", "--no-build-isolation", "--no-index", *force_args, *copies)

    def prime_stevedore_cache(self) -> list[str]:
        """What a plain stevedore ExtensionManager lists; writes stevedore's on-disk cache."""
        result = self.run(
            "-c",
            ARM_STEVEDORE_CACHE + "from stevedore import ExtensionManager;"
            "print(' '.join(sorted(ExtensionManager('river_supervisor.plugins').entry_points_names())))",
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.split()

    def uninstall(self, distribution: str) -> None:
        self.pip("uninstall", "-y", distribution)

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "XDG_CACHE_HOME": str(self.cache)}
        env.pop("DATABASE_URL", None)
        return subprocess.run(
            [str(self.python), *args], capture_output=True, text=True, timeout=120, cwd=self.work, env=env
        )

    def plugins_json(self) -> dict[str, dict]:
        result = self.run("-m", "river_supervisor", "plugins", "--json")
        assert result.returncode in (0, 1), result.stderr
        return {row["name"]: row for row in json.loads(result.stdout)["plugins"]}


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Venv]:
    root = REPO / ".pytest_cache" / f"plugin-venv-{uuid.uuid4().hex[:8]}"
    root.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True, timeout=120)
    python = root / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # addsitedir (not a bare path line) so the development venv's own .pth files, the editable
    # install of river-supervisor among them, are processed too.
    dev_site = sysconfig.get_paths()["purelib"]
    Path(purelib, "_river_supervisor_dev.pth").write_text(f"import site; site.addsitedir({dev_site!r})\n")
    env = Venv(root, python, tmp_path_factory.mktemp("xdg-cache"), tmp_path_factory.mktemp("work"))
    env.pip("install", "--no-deps", "setuptools>=70.1")  # builds wheels without the `wheel` package
    env.install(*(TEST_DISTS / name for name in ("good", "broken", "schedule_only")))
    try:
        yield env
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_installed_plugin_is_listed_with_kinds_distribution_and_version(venv: Venv):
    rows = venv.plugins_json()
    good = rows["rsgood"]
    assert (good["distribution"], good["version"], good["error"]) == ("rs-test-good", "1.0.0", None)
    assert good["kinds"] == ["rsgood.echo"]
    (schedule,) = good["periodic"]
    assert schedule["id"] == "rsgood-every-minute" and schedule["every"] == 60.0 and schedule["cron"] is None
    only = rows["rsschedules"]
    assert only["kinds"] == [] and only["periodic"][0]["timezone"] == "Europe/Berlin"


def test_plugin_failing_at_import_is_reported_and_the_others_are_usable(venv: Venv):
    rows = venv.plugins_json()
    broken = rows["rsbroken"]
    assert (broken["distribution"], broken["version"], broken["kinds"]) == ("rs-test-broken", "1.0.0", [])
    assert broken["error"].startswith("RuntimeError: rs_test_broken: simulated failure at import (at ")
    # The good plugin's handler runs in the same environment, broken plugin and all.
    result = venv.run(
        "-c",
        "import json; from river_supervisor.testing import run_job;"
        "print(json.dumps(run_job('rsgood.echo', {'n': 1})))",
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"echo": {"n": 1}, "plugin": "rsgood"}


def test_plugins_command_exits_1_when_a_plugin_failed_and_prints_a_table(venv: Venv):
    result = venv.run("-m", "river_supervisor", "plugins")
    assert result.returncode == 1
    assert "failed to load: rsbroken" in result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["NAME", "DISTRIBUTION", "VERSION", "STATUS", "KINDS", "PERIODIC"]
    good = next(line for line in rows if line.startswith("rsgood "))
    assert good.split()[:5] == ["rsgood", "rs-test-good", "1.0.0", "ok", "rsgood.echo"]


def test_same_version_reinstall_with_new_entry_point_is_seen(venv: Venv, tmp_path: Path):
    """Install, uninstall, reinstall at the same version with one more entry point and kind."""
    source = tmp_path / "cycle"
    (source / "rs_test_cycle").mkdir(parents=True)
    pyproject = (TEST_DISTS / "good" / "pyproject.toml").read_text()
    pyproject = pyproject.replace("rs-test-good", "rs-test-cycle").replace("rs_test_good", "rs_test_cycle")
    pyproject = pyproject.replace('rsgood = "', 'rscycle = "')
    (source / "pyproject.toml").write_text(pyproject)
    module = source / "rs_test_cycle" / "__init__.py"
    module.write_text(
        "from river_supervisor import Plugin\n"
        "plugin = Plugin('rscycle')\n"
        "plugin.job('rscycle.first')(lambda job: 'first')\n"
    )

    venv.install(source)
    # Arm the trap: stevedore writes its on-disk cache (any stevedore user on the host would).
    assert "rscycle" in venv.prime_stevedore_cache()
    assert any((venv.cache / "python-entrypoints").iterdir())
    assert venv.plugins_json()["rscycle"]["kinds"] == ["rscycle.first"]

    venv.uninstall("rs-test-cycle")
    assert "rscycle" not in venv.plugins_json()

    # Same name, same version 1.0.0; a second entry point and a new kind.
    (source / "pyproject.toml").write_text(
        pyproject.replace(
            'rscycle = "rs_test_cycle:plugin"',
            'rscycle = "rs_test_cycle:plugin"\nrscycle2 = "rs_test_cycle:plugin2"',
        )
    )
    module.write_text(
        module.read_text()
        + "plugin2 = Plugin('rscycle2')\nplugin2.job('rscycle2.second')(lambda job: 'second')\n"
    )
    venv.install(source)
    rows = venv.plugins_json()
    assert rows["rscycle2"]["kinds"] == ["rscycle2.second"]
    assert (rows["rscycle2"]["distribution"], rows["rscycle2"]["version"]) == ("rs-test-cycle", "1.0.0")

    # And back, over the installed copy (pip --force-reinstall at the same version).
    (source / "pyproject.toml").write_text(pyproject)
    venv.pip("install", "--no-deps", "--no-build-isolation", "--no-index", "--force-reinstall", str(source))
    rows = venv.plugins_json()
    assert "rscycle2" not in rows and rows["rscycle"]["kinds"] == ["rscycle.first"]
