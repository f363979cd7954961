"""The command line's first impressions: the bare command, and the dev install's guard."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from river_supervisor.cli import COMMANDS

REPO = Path(__file__).resolve().parents[2]


def test_bare_command_lists_every_command_and_exits_2() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "river_supervisor"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    listed = {line.split()[0] for line in done.stderr.splitlines() if line.startswith("    ")}
    assert set(COMMANDS) <= listed, done.stderr


def test_install_dev_refuses_the_quick_start_venv(tmp_path: Path) -> None:
    # A stand-in `python` that reports the quick start's venv as its prefix (and would install nothing).
    fake = tmp_path / "bin" / "python"
    fake.parent.mkdir()
    fake.write_text(f'#!/bin/sh\necho "{REPO}/.venv"\n')
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{fake.parent}:{os.environ['PATH']}"}
    script = str(REPO / "scripts" / "install-dev.sh")
    done = subprocess.run(["bash", script], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 2
    assert "is the quick start's venv" in done.stderr and "python3 -m venv .venv-dev" in done.stderr
