"""A real Prometheus server (Debian's ``prometheus`` package) on loopback, for the metrics tests.

``PrometheusServer(tmp_path, targets)`` writes a configuration that scrapes ``targets`` every
second, starts ``prometheus`` on a free loopback port with its data in ``tmp_path`` and its log in a
file, and answers instant queries through the HTTP API (``/api/v1/query``). CI installs the package
with ``scripts/system-deps.sh``.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.harness.wait import wait_until

SCRAPE_INTERVAL = "1s"


def free_port() -> int:
    """A loopback port free right now (the kernel's pick; nothing else binds it in between here)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrometheusServer:
    def __init__(self, tmp_path: Path, targets: list[str]) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            pytest.fail(
                "prometheus is not installed: run scripts/system-deps.sh (Debian package `prometheus`)"
            )
        self.binary = binary
        self.dir = tmp_path / "prometheus"
        self.dir.mkdir()
        self.port = free_port()
        self.log_path = self.dir / "prometheus.log"
        config = {
            "global": {"scrape_interval": SCRAPE_INTERVAL, "scrape_timeout": SCRAPE_INTERVAL},
            "scrape_configs": [{"job_name": "river-supervisor", "static_configs": [{"targets": targets}]}],
        }
        self.config_path = self.dir / "prometheus.yml"
        self.config_path.write_text(json.dumps(config))  # JSON is YAML
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> PrometheusServer:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    self.binary,
                    f"--config.file={self.config_path}",
                    f"--storage.tsdb.path={self.dir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        wait_until(self._ready, 60, "prometheus ready", interval=0.1, context=self.log_tail)
        return self

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"prometheus exited with {self.proc.returncode}\n{self.log_tail()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2) as reply:
                return reply.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant query's samples: ``[{"metric": {labels}, "value": float}]``."""
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        try:
            with urllib.request.urlopen(url, timeout=10) as reply:
                body = json.load(reply)
        except urllib.error.HTTPError as exc:  # a bad query: Prometheus says why in the body
            raise AssertionError(
                f"prometheus refused {promql!r}: {exc.read().decode(errors='replace')}"
            ) from None
        assert body["status"] == "success", body
        return [{"metric": s["metric"], "value": float(s["value"][1])} for s in body["data"]["result"]]

    def targets_up(self) -> dict[str, float]:
        """instance -> the ``up`` of its last scrape."""
        return {s["metric"]["instance"]: s["value"] for s in self.query("up")}

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        except FileNotFoundError:
            text = []
        return "--- prometheus log tail ---\n" + "\n".join(text)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                self.proc.wait(10)
