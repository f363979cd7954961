"""plugins/shell: ``shell.run`` through its handler, success and every way it can fail."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from river_supervisor import JobCancel
from river_supervisor.plugins import call_handler
from river_supervisor.testing import make_job
from river_supervisor_shell import TAIL_BYTES, CommandFailed, CommandTimeout, plugin

from tests.harness.wait import wait_until


def run(args: dict, **fields):
    return call_handler(plugin.jobs["shell.run"].handler, make_job("shell.run", args, **fields))


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")  # a zombie has run its course; only its parent's wait remains


def test_plugin_declares_shell_run():
    assert plugin.name == "shell" and plugin.kinds == ["shell.run"]


def test_argv_command_returns_exit_code_and_output():
    assert run({"command": ["echo", "hello world"]}) == {
        "exit_code": 0,
        "stdout": "hello world\n",
        "stderr": "",
    }


def test_string_command_runs_in_a_shell_with_env_and_cwd(tmp_path):
    result = run(
        {
            "command": 'echo "$GREETING" from "$(pwd)"; echo warn >&2',
            "env": {"GREETING": "hi"},
            "cwd": str(tmp_path),
        }
    )
    assert result["stdout"] == f"hi from {tmp_path}\n"
    assert result["stderr"] == "warn\n"


def test_non_zero_exit_raises_with_code_and_output_tail():
    with pytest.raises(CommandFailed) as info:
        run({"command": "echo partial work; echo 'disk full' >&2; exit 3"})
    assert info.value.exit_code == 3
    message = str(info.value)
    assert message.startswith(
        """command "echo partial work; echo 'disk full' >&2; exit 3" exited with code 3"""
    )
    assert "disk full" in message and "partial work" in message


def test_output_is_truncated_to_its_tail():
    result = run({"command": "head -c 100000 /dev/zero | tr '\\0' a; printf END"})
    assert len(result["stdout"]) == TAIL_BYTES and result["stdout"].endswith("aEND")


def test_timeout_kills_the_whole_process_group(tmp_path):
    pidfile = tmp_path / "background.pid"
    command = f"sleep 60 & echo $! > {pidfile}; sleep 60"
    with pytest.raises(CommandTimeout) as info:
        run({"command": command, "timeout": 0.5})
    assert "timed out after 0.5s; its process group was killed" in str(info.value)
    background = int(pidfile.read_text())
    wait_until(lambda: _gone(background), timeout=10, describe=f"background sleep {background} killed")


def test_a_cancel_request_stops_the_command(tmp_path):
    pidfile = tmp_path / "pid"
    job = make_job("shell.run", {"command": f"echo $$ > {pidfile}; sleep 60"})
    outcome: list[BaseException] = []

    def worker():
        try:
            call_handler(plugin.jobs["shell.run"].handler, job)
        except BaseException as exc:  # the test inspects it
            outcome.append(exc)

    thread = threading.Thread(target=worker)
    thread.start()
    wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), describe="command started")
    job.request_cancel()
    thread.join(15)
    assert isinstance(outcome[0], JobCancel) and "cancel requested" in str(outcome[0])
    wait_until(lambda: _gone(int(pidfile.read_text())), timeout=10, describe="command killed")


def test_a_missing_program_fails_to_start():
    with pytest.raises(CommandFailed, match="could not start"):
        run({"command": ["/nonexistent/program-xyz"]})


@pytest.mark.parametrize(
    "args",
    [
        {},
        {"command": ""},
        {"command": ["ls", 1]},
        {"command": ["ls"], "shell": True},
        {"command": "ls", "timeout": -1},
        {"command": "ls", "env": {"A": 1}},
    ],
)
def test_invalid_args_cancel_the_job_instead_of_retrying(args):
    with pytest.raises(JobCancel, match=r"^shell\.run: args"):
        run(args)


def test_process_runs_in_its_own_session():
    result = run({"command": ["sh", "-c", "ps -o sid= -p $$"]})
    assert int(result["stdout"]) != os.getsid(0)
