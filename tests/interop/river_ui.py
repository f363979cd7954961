"""River UI (riverqueue.com/riverui v0.22.0, built from its module) on loopback, and Chromium driving it.

River UI's module ships its built front end (``dist/``, embedded by ``go build``): the module holds
no front-end sources or package.json, so there is nothing for npm to build; ``go build`` of
``riverqueue.com/riverui/cmd/riverui`` gives the same binary River publishes. npm installs only
playwright-core (pinned in tests/interop/node/package-lock.json), which drives Debian's
``/usr/bin/chromium`` (scripts/system-deps.sh installs it); no browser is downloaded.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

from tests.harness.wait import wait_until

NODE_DIR = Path(__file__).resolve().parent / "node"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM = "/usr/bin/chromium"


def browser_missing_reason() -> str | None:
    if shutil.which("node") is None or shutil.which("npm") is None:
        return "Node.js and npm are not installed: River UI is driven with playwright-core"
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} is missing: scripts/system-deps.sh installs Debian's chromium"
    return None


def install_playwright() -> None:
    """``npm ci`` from the committed lock file (a no-op when node_modules is current)."""
    if (NODE_DIR / "node_modules" / "playwright-core" / "package.json").exists():
        return
    result = subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, f"npm ci failed:\n{result.stderr[-3000:]}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RiverUI:
    """``riverui`` serving one database on 127.0.0.1, its log in a file."""

    def __init__(self, binary: Path, database_url: str, log: Path) -> None:
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = log
        env = {**os.environ, "DATABASE_URL": database_url, "RIVER_HOST": "127.0.0.1", "PORT": str(self.port)}
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [str(binary)], env=env, stdout=out, stderr=out, start_new_session=True
            )
        wait_until(self._healthy, 60, "River UI's health check", interval=0.1, context=self.tail)

    def _healthy(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"riverui exited {self.proc.returncode}\n{self.tail()}")
        with contextlib.suppress(OSError):
            return self.get("/api/health-checks/complete") == {"status": "ok"}
        return False

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.base + path, timeout=10) as response:
            return json.loads(response.read())

    def tail(self) -> str:
        return "--- riverui ---\n" + "\n".join(self.log.read_text(errors="replace").splitlines()[-20:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


def drive(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Run tests/interop/node/drive.mjs: one Chromium, the steps in order; each step's page text."""
    result = subprocess.run(
        ["node", "drive.mjs", json.dumps(steps)],
        cwd=NODE_DIR,
        env={**os.environ, "CHROMIUM": CHROMIUM},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"drive.mjs exited {result.returncode}:\n{result.stderr[-3000:]}"
    return json.loads(result.stdout.strip().splitlines()[-1])


def artifact(name: str) -> str:
    ARTIFACTS.mkdir(exist_ok=True)
    return str(ARTIFACTS / name)
