"""River's side of the interop tests: Go programs built from tests/interop/go (pinned go.mod/go.sum).

``build(target)`` compiles once per run into tests/interop/go/bin (Go's build cache makes a second
run take seconds; a cold one compiles pgx and River, and River UI's module). ``RiverGo`` runs the
``riverinterop`` commands; ``GoWorker`` is River's client working queues in the background, its
JSON lines in a log file (never an undrained pipe).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.harness.wait import wait_until

GO_MODULE = Path(__file__).resolve().parent / "go"
BIN = GO_MODULE / "bin"
BUILD_TIMEOUT = 1800  # a cold build of River UI's module took 2.5 min on a loaded 2-core machine

TARGETS = {
    "riverinterop": "./cmd/riverinterop",
    "riverui": "riverqueue.com/riverui/cmd/riverui",  # the `tool` of go.mod, River UI v0.22.0
}


def go_missing_reason() -> str | None:
    if shutil.which("go") is None:
        return "Go is not installed: the interop suite builds River's Go client from tests/interop/go"
    return None


def build(target: str) -> Path:
    """``go build`` one program of the module; -mod=readonly: go.mod and go.sum pin every version."""
    BIN.mkdir(exist_ok=True)
    out = BIN / target
    env = {**os.environ, "GOFLAGS": "-mod=readonly", "GOTOOLCHAIN": "local"}
    started = time.monotonic()
    result = subprocess.run(
        ["go", "build", "-o", str(out), TARGETS[target]],
        cwd=GO_MODULE,
        env=env,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
    )
    if result.returncode != 0:
        raise AssertionError(f"go build {target} failed:\n{result.stderr[-4000:]}")
    print(f"go build {target}: {time.monotonic() - started:.1f}s")
    return out


class RiverGo:
    """The ``riverinterop`` commands against one database."""

    def __init__(self, binary: Path, database_url: str) -> None:
        self.binary = binary
        self.database_url = database_url

    def run(self, command: str, *args: str, stdin: str | None = None, timeout: float = 120) -> Any:
        """Run a command; return its last JSON line (raises with stderr on a non-zero exit)."""
        result = subprocess.run(
            [str(self.binary), command, "--database-url", self.database_url, *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if result.returncode != 0:
            raise AssertionError(f"riverinterop {command} exited {result.returncode}: {result.stderr}")
        lines = [line for line in result.stdout.splitlines() if line.strip()]
        return json.loads(lines[-1]) if lines else None

    def insert(self, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Insert ``jobs`` with River's ``InsertTx``, all in one transaction."""
        return self.run("insert", stdin=json.dumps(jobs))["inserted"]

    def worker(self, log: Path, *args: str) -> GoWorker:
        return GoWorker(self, log, list(args))


class GoWorker:
    """``riverinterop work``: River's client working queues until stopped."""

    def __init__(self, river: RiverGo, log: Path, args: list[str]) -> None:
        self.river = river
        self.log = log
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> GoWorker:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [str(self.river.binary), "work", "--database-url", self.river.database_url, *self.args],
                stdout=out,
                stderr=out,
                start_new_session=True,
            )
        self.wait_for(lambda line: line.get("started"), "River's client to start", timeout=60)
        return self

    def lines(self) -> list[dict[str, Any]]:
        found = []
        for text in self.log.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                found.append(json.loads(text))
        return found

    @property
    def client_id(self) -> str:
        return next(line["client_id"] for line in self.lines() if line.get("started"))

    def wait_for(
        self, match: Callable[[dict[str, Any]], Any], describe: str, timeout: float = 60
    ) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"riverinterop work exited {self.proc.returncode}:\n{self.tail()}")
            return next((line for line in self.lines() if match(line)), None)

        return wait_until(found, timeout, describe, interval=0.05, context=self.tail)

    def tail(self) -> str:
        return "--- riverinterop work ---\n" + "\n".join(
            self.log.read_text(errors="replace").splitlines()[-30:]
        )

    def stop(self) -> None:
        """SIGTERM: River's client stops fetching and finishes its running jobs (Client.Stop)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"River's client did not stop within 30s\n{self.tail()}") from None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
