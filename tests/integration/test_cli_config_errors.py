"""What a user sees on bad configuration: one ``river-supervisor: error:`` line, exit 2, no traceback.

Each case runs the real CLI (``python -m river_supervisor migrate``) in a subprocess; ``--debug``
adds the traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

UNREACHABLE = "postgresql://app:hunter2@127.0.0.1:1/x"

CASES = {
    "toml_syntax": ('cluster = "eu"\nprocesses = \n', "invalid TOML at line 2, column 13"),
    "misspelled_key": ('[leadership]\ntll = "15s"\n', "[leadership] tll: unknown key (did you mean `ttl`?)"),
    "processes_four": ('processes = "four"\n', 'processes: expected an integer >= 1, got "four"'),
    "bad_duration": ('[leadership]\nttl = "15 seconds"\n', "[leadership] ttl: expected a duration >= 3s"),
    "unreachable_database": (
        f'database_url = "{UNREACHABLE}"\n',
        "database postgresql://app:***@127.0.0.1:1/x",
    ),
}


def _environ() -> dict[str, str]:
    # The configuration comes from the file alone: no DATABASE_URL or SENTRY_DSN from the test run.
    unset = ("DATABASE_URL", "SENTRY_DSN", "SENTRY_ENVIRONMENT")
    return {k: v for k, v in os.environ.items() if k not in unset}


def _migrate(tmp_path: Path, text: str, *extra: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "river-supervisor.toml"
    path.write_text(text, encoding="utf-8")
    return subprocess.run(
        [sys.executable, "-m", "river_supervisor", "migrate", "--config", str(path), *extra],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=_environ(),
        timeout=60,
    )


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_configuration_prints_one_line_and_exits_2(tmp_path: Path, case: str) -> None:
    text, expected = CASES[case]
    result = _migrate(tmp_path, text)
    # an unreachable database has its own code (69): "try again", where 2 says "fix the input"
    assert result.returncode == (69 if case == "unreachable_database" else 2), result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("river-supervisor: error: ")
    assert expected in lines[0]
    if case != "unreachable_database":  # the database error names the URL, not the file
        assert str(tmp_path / "river-supervisor.toml") in lines[0]
    assert "hunter2" not in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("case", sorted(CASES))
def test_debug_shows_the_traceback(tmp_path: Path, case: str) -> None:
    text, expected = CASES[case]
    result = _migrate(tmp_path, text, "--debug")
    assert result.returncode == (69 if case == "unreachable_database" else 2), result.stderr
    assert "Traceback" in result.stderr
    assert expected in result.stderr
    assert "hunter2" not in result.stderr


def test_a_missing_config_file_is_a_configuration_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "river_supervisor", "migrate", "--config", "absent.toml"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=_environ(),
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr == "river-supervisor: error: absent.toml: configuration file not found\n"


def test_an_unreachable_database_flag_prints_one_line_and_exits_69(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "river_supervisor", "migrate", "--database-url", UNREACHABLE],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=_environ(),
        timeout=60,
    )
    assert result.returncode == 69  # EX_UNAVAILABLE: a health check tells it from a typo (2)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("river-supervisor: error: database postgresql://app:***@127.0.0.1:1/x: ")
    assert "hunter2" not in result.stderr


def test_a_good_config_file_reaches_its_database(tmp_path: Path, database_url: str) -> None:
    """The happy path through the same route: a good file's database_url is used."""
    result = _migrate(tmp_path, f'database_url = "{database_url}"\n')
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ('kind = "test.noop"\ncron = "61 * * * *"', "cron: minute: 61 is out of range"),
        ('kind = "test.noop"\ncron = "* * * * * *"', "cron"),
        ('kind = "test.noop"', "cron"),  # neither cron nor every
        ('kind = "nobody.has.this"\nevery = "1m"', "no plugin here handles kind 'nobody.has.this'"),
    ],
    ids=["cron_61", "six_fields", "no_schedule", "unknown_kind"],
)
def test_run_refuses_a_bad_schedule_before_touching_the_database(
    tmp_path: Path, entry: str, expected: str
) -> None:
    text = (
        f'database_url = "{UNREACHABLE}"\n[plugins]\nenabled = ["testjobs"]\n'
        f'[[periodic]]\nid = "nightly"\n{entry}\n'
    )
    path = tmp_path / "river-supervisor.toml"
    path.write_text(text, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "river_supervisor", "run", "--config", str(path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=_environ(),
        timeout=60,
    )
    assert result.returncode == 2, result.stderr  # a configuration error, not 69: no database was tried
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"river-supervisor: error: {path}: ") and expected in line, line
    assert "nightly" in line and "database" not in line
