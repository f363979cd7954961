"""``config.load``: the file, the environment and flags; every rule and its one-line error."""

from __future__ import annotations

import argparse
import pickle
from pathlib import Path
from typing import Any

import pytest
from river_supervisor import config
from river_supervisor.config import Config, PeriodicEntry, QueueConfig
from river_supervisor.errors import ConfigError

FILE = config.DEFAULT_FILE


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run in an empty directory, so messages name ``river-supervisor.toml`` and no stray file is read."""
    monkeypatch.chdir(tmp_path)


def load(text: str, *, environ: dict[str, str] | None = None, flags: dict[str, Any] | None = None) -> Config:
    Path(FILE).write_text(text, encoding="utf-8")
    return config.load(FILE, environ=environ or {}, flags=flags)


def error(text: str, **kwargs: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        load(text, **kwargs)
    message = str(caught.value)
    assert "\n" not in message
    return message


# --- the file ---------------------------------------------------------------------------------


def test_no_file_gives_defaults_from_the_settings_table() -> None:
    cfg = config.load(environ={})
    assert cfg.path is None
    assert cfg.database_url is None
    assert cfg.cluster == "default"
    assert cfg.processes >= 1
    assert cfg.node
    assert (cfg.job_timeout, cfg.shutdown_grace, cfg.poll_interval) == (60.0, 30.0, 1.0)
    assert cfg.queues == {"default": QueueConfig("default", 10)}
    assert cfg.leadership.ttl == 15.0
    assert cfg.maintenance == config.MaintenanceConfig(3600.0, 86400.0, 86400.0, 604800.0)
    assert cfg.plugins == config.PluginsConfig(None, ())
    assert cfg.periodic == ()
    assert set(cfg.sources.values()) == {"default"}


def test_river_supervisor_toml_in_the_working_directory_is_read() -> None:
    Path(FILE).write_text('cluster = "eu"\n', encoding="utf-8")
    cfg = config.load(environ={})
    assert cfg.path == FILE
    assert cfg.cluster == "eu"
    assert cfg.sources["cluster"] == f"file {FILE}"


def test_an_explicit_missing_file_is_an_error_naming_it() -> None:
    with pytest.raises(ConfigError) as caught:
        config.load("nowhere.toml", environ={})
    assert str(caught.value) == "nowhere.toml: configuration file not found"
    assert caught.value.exit_code == 2


def test_a_toml_syntax_error_names_file_line_and_column() -> None:
    assert error('cluster = "eu"\nprocesses = \n') == (
        f"{FILE}: invalid TOML at line 2, column 13: Invalid value"
    )


def test_a_file_that_is_not_utf8_is_an_error() -> None:
    Path(FILE).write_bytes(b'cluster = "\xff"\n')
    with pytest.raises(ConfigError, match="not UTF-8"):
        config.load(FILE, environ={})


def test_toml_1_1_syntax_is_accepted() -> None:
    # Multi-line inline tables and trailing commas are TOML 1.1 (tomllib of 3.11-3.14 rejects them).
    cfg = load('[[periodic]]\nid = "a"\nargs = {\n  region = "eu",\n}\n')
    assert cfg.periodic[0].args == {"region": "eu"}


@pytest.mark.parametrize("path", sorted(Path(__file__).parents[2].joinpath("examples/config").glob("*.toml")))
def test_the_example_files_load(path: Path) -> None:
    cfg = config.load(str(path), environ={})
    assert cfg.path == str(path)


def test_examples_exist() -> None:
    names = {p.name for p in Path(__file__).parents[2].joinpath("examples/config").glob("*.toml")}
    assert {"minimal.toml", "production.toml"} <= names


# --- unknown keys -----------------------------------------------------------------------------


def test_a_misspelled_section_key_suggests_the_nearest() -> None:
    assert (
        error('[leadership]\ntll = "15s"\n') == f"{FILE}: [leadership] tll: unknown key (did you mean `ttl`?)"
    )


def test_a_misspelled_top_level_key_suggests_the_nearest() -> None:
    assert error("procesess = 4\n") == f"{FILE}: procesess: unknown key (did you mean `processes`?)"


def test_a_section_key_at_the_top_level_points_to_its_section() -> None:
    assert error('ttl = "15s"\n') == f"{FILE}: ttl: unknown key (did you mean `ttl` in [leadership]?)"


def test_a_misspelled_section_suggests_the_section() -> None:
    assert (
        error('[leadershp]\nttl = "15s"\n') == f"{FILE}: leadershp: unknown key (did you mean `leadership`?)"
    )


def test_an_unknown_key_without_a_near_one_has_no_suggestion() -> None:
    assert error("[sentry]\nzzz = 1\n") == f"{FILE}: [sentry] zzz: unknown key"


def test_a_section_that_is_not_a_table_is_an_error() -> None:
    assert error("leadership = 5\n") == f"{FILE}: leadership: expected a table [leadership], got 5"


# --- values -----------------------------------------------------------------------------------


def test_processes_must_be_an_integer() -> None:
    assert error('processes = "four"\n') == f'{FILE}: processes: expected an integer >= 1, got "four"'


@pytest.mark.parametrize(
    ("value", "shown"), [("0", "0"), ("true", "true"), ("2.5", "2.5"), ("[4]", "an array")]
)
def test_processes_must_be_an_integer_of_at_least_one(value: str, shown: str) -> None:
    assert error(f"processes = {value}\n") == f"{FILE}: processes: expected an integer >= 1, got {shown}"


def test_top_level_values_are_read() -> None:
    cfg = load(
        'database_url = "postgresql://app@db/app"\ncluster = "eu"\nnode = "web-1"\nprocesses = 4\n'
        'job_timeout = "5m"\nshutdown_grace = 10\npoll_interval = "250ms"\n'
    )
    assert (cfg.database_url, cfg.cluster, cfg.node, cfg.processes) == (
        "postgresql://app@db/app",
        "eu",
        "web-1",
        4,
    )
    assert (cfg.job_timeout, cfg.shutdown_grace, cfg.poll_interval) == (300.0, 10.0, 0.25)


def test_a_malformed_duration_names_the_key_and_the_forms() -> None:
    assert error('job_timeout = "5 minutes"\n') == (
        f'{FILE}: job_timeout: expected a duration such as "15s", "5m", "1h30m" or a number of seconds,'
        ' got "5 minutes"'
    )


def test_a_negative_duration_is_an_error() -> None:
    assert "shutdown_grace: expected a duration" in error("shutdown_grace = -1\n")


def test_job_timeout_zero_means_no_timeout() -> None:
    assert load("job_timeout = 0\n").job_timeout == 0.0


def test_poll_interval_must_be_positive() -> None:
    assert "poll_interval: expected a duration > 0" in error('poll_interval = "0s"\n')


def test_empty_strings_are_rejected() -> None:
    assert error('cluster = ""\n') == f'{FILE}: cluster: expected a non-empty string, got ""'


def test_leadership_ttl_has_a_minimum_of_three_seconds() -> None:
    assert load('[leadership]\nttl = "3s"\n').leadership.ttl == 3.0
    assert (
        error('[leadership]\nttl = "2s"\n')
        == f'{FILE}: [leadership] ttl: expected a duration >= 3s, got "2s"'
    )


def test_maintenance_durations_are_read() -> None:
    cfg = load('[maintenance]\nrescue_after = "30m"\ncompleted_retention = "2d"\ndiscarded_retention = 60\n')
    assert cfg.maintenance == config.MaintenanceConfig(1800.0, 172800.0, 86400.0, 60.0)
    assert cfg.sources["maintenance.rescue_after"] == f"file {FILE}"
    assert cfg.sources["maintenance.cancelled_retention"] == "default"


# --- queues -----------------------------------------------------------------------------------


def test_queues_replace_the_default_queue() -> None:
    cfg = load("[queues.email]\nconcurrency = 5\n[queues.reports]\n")
    assert cfg.queues == {"email": QueueConfig("email", 5), "reports": QueueConfig("reports", 10)}
    assert cfg.sources["queues.email.concurrency"] == f"file {FILE}"
    assert cfg.sources["queues.reports.concurrency"] == "default"


def test_queue_concurrency_must_be_at_least_one() -> None:
    assert error("[queues.default]\nconcurrency = 0\n") == (
        f"{FILE}: [queues.default] concurrency: expected an integer >= 1, got 0"
    )


def test_a_misspelled_queue_key_suggests_concurrency() -> None:
    assert "[queues.default] concurency: unknown key (did you mean `concurrency`?)" in error(
        "[queues.default]\nconcurency = 3\n"
    )


def test_queue_names_follow_rivers_rule() -> None:
    assert error('[queues."Big Queue"]\n').startswith(f"{FILE}: [queues.Big Queue]: expected a queue name")


def test_an_empty_queues_table_is_an_error() -> None:
    assert error("[queues]\n") == f"{FILE}: [queues]: expected at least one [queues.<name>] table"


def test_a_queue_that_is_not_a_table_is_an_error() -> None:
    assert error("[queues]\ndefault = 3\n") == f"{FILE}: [queues.default]: expected a table, got 3"


# --- sentry and plugins -----------------------------------------------------------------------


def test_sentry_settings_are_read() -> None:
    cfg = load(
        '[sentry]\ndsn = "https://abc123@o1.ingest.sentry.io/42"\n'
        'environment = "prod"\nsend_job_args = true\n'
    )
    assert cfg.sentry == config.SentryConfig("https://abc123@o1.ingest.sentry.io/42", "prod", True)


@pytest.mark.parametrize(
    "dsn",
    [
        "https://o1.ingest.sentry.io/42",  # no public key
        "ftp://abc123@o1.ingest.sentry.io/42",  # scheme
        "https://abc123@o1.ingest.sentry.io/project",  # project id
        "https://abc123@/42",  # host
        "not a dsn secretkey",
    ],
)
def test_a_bad_sentry_dsn_is_an_error_that_does_not_echo_the_key(dsn: str) -> None:
    message = error(f'[sentry]\ndsn = "{dsn}"\n')
    assert message.startswith(f"{FILE}: [sentry] dsn: expected a Sentry DSN")
    assert "abc123" not in message
    assert "secretkey" not in message


def test_send_job_args_must_be_a_boolean() -> None:
    assert error('[sentry]\nsend_job_args = "yes"\n') == (
        f'{FILE}: [sentry] send_job_args: expected true or false, got "yes"'
    )


def test_plugins_enabled_and_disabled_are_tuples() -> None:
    cfg = load('[plugins]\nenabled = ["billing", "reports"]\ndisabled = ["legacy"]\n')
    assert cfg.plugins == config.PluginsConfig(("billing", "reports"), ("legacy",))


def test_a_plugin_both_enabled_and_disabled_is_an_error() -> None:
    assert "[plugins] disabled: expected no plugin also in `enabled`" in error(
        '[plugins]\nenabled = ["a"]\ndisabled = ["a"]\n'
    )


def test_plugins_must_be_arrays_of_names() -> None:
    assert error('[plugins]\ndisabled = "legacy"\n') == (
        f'{FILE}: [plugins] disabled: expected an array of plugin names, got "legacy"'
    )


# --- database_url -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://app@db/app",
        "postgres://app:secret@db:5433/app?sslmode=require",
        "postgresql:///app",
        "host=db port=5432 dbname=app user=app password='a b'",
        "dbname=app",
    ],
)
def test_database_urls_and_conninfo_strings_are_accepted(url: str) -> None:
    assert load(f'database_url = "{url}"\n').database_url == url


@pytest.mark.parametrize(
    ("url", "got"),
    [
        ("mysql://app:hunter2@db/app", "a mysql:// URL"),
        ("localhost", "something else"),
        ("host=db password='hunter2", "something else"),
        ("postgresql://app:hunter2@db:port/app", "postgresql://app:***@db:port/app"),
    ],
)
def test_a_bad_database_url_names_the_key_and_never_the_password(url: str, got: str) -> None:
    message = error(f'database_url = "{url}"\n')
    assert message.startswith(f"{FILE}: database_url: expected a postgresql:// or postgres:// URL")
    assert message.endswith(f"got {got}")
    assert "hunter2" not in message


# --- periodic ---------------------------------------------------------------------------------

FULL_ENTRY = """
[[periodic]]
id = "nightly-report"
kind = "reports.nightly"
cron = "0 3 * * *"
timezone = "Europe/Berlin"
args = { region = "eu", ids = [1, 2] }
queue = "reports"
priority = 2
max_attempts = 3
missed = "all"
missed_cap = 5
overlap = "skip"
monitor = true
enabled = true
"""


def test_a_periodic_entry_keeps_every_key_and_which_were_given() -> None:
    (entry,) = load(FULL_ENTRY).periodic
    assert entry == PeriodicEntry(
        id="nightly-report",
        kind="reports.nightly",
        cron="0 3 * * *",
        timezone="Europe/Berlin",
        args={"region": "eu", "ids": [1, 2]},
        queue="reports",
        priority=2,
        max_attempts=3,
        missed="all",
        missed_cap=5,
        overlap="skip",
        monitor=True,
        enabled=True,
        given=frozenset(
            {"id", "kind", "cron", "timezone", "args", "queue", "priority", "max_attempts"}
            | {"missed", "missed_cap", "overlap", "monitor", "enabled"}
        ),
    )


def test_an_override_entry_needs_only_an_id() -> None:
    cfg = load('[[periodic]]\nid = "charge-every-5m"\nenabled = false\n')
    assert cfg.periodic == (
        PeriodicEntry("charge-every-5m", enabled=False, given=frozenset({"id", "enabled"})),
    )
    assert cfg.sources["periodic"] == f"file {FILE}"


def test_every_is_a_duration() -> None:
    assert load('[[periodic]]\nid = "sweep"\nkind = "k"\nevery = "90s"\n').periodic[0].every == 90.0


def test_a_periodic_entry_needs_an_id() -> None:
    assert error('[[periodic]]\nkind = "k"\n') == (
        f"{FILE}: [[periodic]] #1: expected an `id` key (a unique name for the schedule)"
    )


def test_periodic_ids_are_unique() -> None:
    assert error('[[periodic]]\nid = "a"\n[[periodic]]\nid = "a"\n') == (
        f'{FILE}: [[periodic]] id "a" id: expected a unique id: an earlier [[periodic]] entry has it'
    )


def test_cron_and_every_are_mutually_exclusive() -> None:
    assert error('[[periodic]]\nid = "a"\ncron = "* * * * *"\nevery = "1m"\n') == (
        f'{FILE}: [[periodic]] id "a" every: expected either `cron` or `every`, not both'
    )


def test_cron_must_be_a_non_empty_string() -> None:
    assert error('[[periodic]]\nid = "a"\ncron = ""\n') == (
        f'{FILE}: [[periodic]] id "a" cron: expected a non-empty string, got ""'
    )
    assert "cron: expected a non-empty string, got 5" in error('[[periodic]]\nid = "a"\ncron = 5\n')


def test_cron_syntax_is_left_to_the_periodic_module() -> None:
    assert load('[[periodic]]\nid = "a"\ncron = "not cron"\n').periodic[0].cron == "not cron"


def test_an_unknown_time_zone_is_an_error() -> None:
    assert error('[[periodic]]\nid = "a"\ntimezone = "Europe/Berlim"\n') == (
        f'{FILE}: [[periodic]] id "a" timezone: expected an IANA time zone name such as "UTC" or'
        ' "Europe/Berlin", got "Europe/Berlim"'
    )


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("priority = 5", "priority: expected an integer from 1 to 4, got 5"),
        ("max_attempts = 0", "max_attempts: expected an integer >= 1, got 0"),
        ('missed = "some"', 'missed: expected "skip" or "latest" or "all", got "some"'),
        ('overlap = "queue"', 'overlap: expected "allow" or "skip", got "queue"'),
        ('monitor = "yes"', 'monitor: expected true or false, got "yes"'),
        ("enabled = 1", "enabled: expected true or false, got 1"),
        ('queue = "Reports!"', "queue: expected a queue name"),
        ("args = 5", "args: expected a table of JSON-compatible values"),
        ("args = { at = 2024-01-01 }", "args: expected a table of JSON-compatible values"),
        ('every = "soon"', "every: expected a duration > 0"),
        ('every = "0s"', "every: expected a duration > 0"),
        ("missed_cap = 0", "missed_cap: expected an integer >= 1, got 0"),
        ('kind = ""', 'kind: expected a non-empty string, got ""'),
    ],
)
def test_periodic_values_are_validated(line: str, expected: str) -> None:
    assert f'[[periodic]] id "a" {expected}' in error(f'[[periodic]]\nid = "a"\n{line}\n')


def test_missed_cap_goes_only_with_missed_all() -> None:
    assert error('[[periodic]]\nid = "a"\nmissed = "skip"\nmissed_cap = 3\n') == (
        f'{FILE}: [[periodic]] id "a" missed_cap: expected only with missed = "all"'
    )
    # Without `missed` the entry may be capping a plugin schedule whose policy is "all".
    assert load('[[periodic]]\nid = "a"\nmissed_cap = 3\n').periodic[0].missed_cap == 3


def test_a_misspelled_periodic_key_suggests_the_nearest() -> None:
    assert error('[[periodic]]\nid = "a"\ntimzone = "UTC"\n') == (
        f'{FILE}: [[periodic]] id "a" timzone: unknown key (did you mean `timezone`?)'
    )


def test_periodic_must_be_an_array_of_tables() -> None:
    assert error('periodic = "x"\n') == f"{FILE}: periodic: expected an array of tables [[periodic]]"


# --- precedence and sources -------------------------------------------------------------------


def test_the_environment_overrides_the_file() -> None:
    cfg = load('database_url = "postgresql://file/db"\n', environ={"DATABASE_URL": "postgresql://env/db"})
    assert cfg.database_url == "postgresql://env/db"
    assert cfg.sources["database_url"] == "env DATABASE_URL"


def test_a_flag_overrides_the_environment_and_the_file() -> None:
    cfg = load(
        'database_url = "postgresql://file/db"\n',
        environ={"DATABASE_URL": "postgresql://env/db"},
        flags={"database_url": "postgresql://flag/db"},
    )
    assert cfg.database_url == "postgresql://flag/db"
    assert cfg.sources["database_url"] == "flag --database-url"


def test_the_file_overrides_the_default() -> None:
    cfg = load('database_url = "postgresql://file/db"\n')
    assert cfg.sources["database_url"] == f"file {FILE}"


def test_a_flag_set_to_none_is_absent() -> None:
    cfg = load('database_url = "postgresql://file/db"\n', flags={"database_url": None})
    assert cfg.database_url == "postgresql://file/db"


def test_an_empty_environment_variable_is_unset() -> None:
    cfg = load('database_url = "postgresql://file/db"\n', environ={"DATABASE_URL": "  "})
    assert cfg.database_url == "postgresql://file/db"


def test_sentry_dsn_and_environment_come_from_the_environment() -> None:
    environ = {"SENTRY_DSN": "https://k@sentry.example/7", "SENTRY_ENVIRONMENT": "staging"}
    cfg = load('[sentry]\nenvironment = "prod"\n', environ=environ)
    assert cfg.sentry.dsn == "https://k@sentry.example/7"
    assert cfg.sentry.environment == "staging"
    assert cfg.sources["sentry.dsn"] == "env SENTRY_DSN"
    assert cfg.sources["sentry.environment"] == "env SENTRY_ENVIRONMENT"


def test_the_sentry_dsn_flag_wins() -> None:
    cfg = load(
        "",
        environ={"SENTRY_DSN": "https://k@sentry.example/7"},
        flags={"sentry_dsn": "https://f@s.example/8"},
    )
    assert cfg.sentry.dsn == "https://f@s.example/8"
    assert cfg.sources["sentry.dsn"] == "flag --sentry-dsn"


def test_a_bad_environment_value_names_the_variable_not_the_file() -> None:
    message = error("", environ={"DATABASE_URL": "mysql://u:hunter2@h/d"})
    assert message == (
        "env DATABASE_URL: expected a postgresql:// or postgres:// URL or a libpq key=value string,"
        " got a mysql:// URL"
    )


def test_a_bad_flag_value_names_the_flag() -> None:
    message = error("", flags={"sentry_dsn": "https://sentry.example/7"})
    assert message.startswith("flag --sentry-dsn: expected a Sentry DSN")


def test_an_unknown_flag_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown flag 'procs'"):
        config.load(environ={}, flags={"procs": 3})


def test_only_given_environ_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://process-env/db")
    assert config.load(environ={}).database_url is None
    assert config.load().database_url == "postgresql://process-env/db"


def test_flag_values_reads_an_argparse_namespace() -> None:
    args = argparse.Namespace(database_url="postgresql://x/y", config=None, debug=False)
    assert config.flag_values(args) == {"database_url": "postgresql://x/y"}


# --- redaction, pickling, reference -----------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://app:hunter2@db:5432/app", "postgresql://app:***@db:5432/app"),
        ("postgresql://app:hun@ter2@db/app", "postgresql://app:***@db/app"),
        ("postgresql://app@db/app", "postgresql://app@db/app"),
        ("postgresql://db/app?user=a&password=hunter2", "postgresql://db/app?user=a&password=***"),
        ("host=db password=hunter2 user=app", "host=db password=*** user=app"),
        ("host=db password='hunter 2' user=app", "host=db password=*** user=app"),
    ],
)
def test_redact_database_url_hides_the_password(url: str, shown: str) -> None:
    assert config.redact_database_url(url) == shown


def test_redact_dsn_hides_the_keys() -> None:
    assert config.redact_dsn("https://pub:sec@o1.ingest.sentry.io/42") == "https://***@o1.ingest.sentry.io/42"


def test_redacted_view_has_no_secrets() -> None:
    cfg = load(
        'database_url = "postgresql://app:hunter2@db/app"\n[sentry]\ndsn = "https://abc123@sentry.example/1"\n'
        + FULL_ENTRY
    )
    view = cfg.redacted()
    assert view["database_url"] == "postgresql://app:***@db/app"
    assert view["sentry"]["dsn"] == "https://***@sentry.example/1"
    assert view["leadership"] == {"ttl": 15.0}
    assert view["periodic"][0]["id"] == "nightly-report"
    text = repr(view)
    assert "hunter2" not in text and "abc123" not in text


def test_a_config_survives_pickling() -> None:
    cfg = load(FULL_ENTRY)
    assert pickle.loads(pickle.dumps(cfg)) == cfg


def test_the_settings_table_declares_each_key_once() -> None:
    keys = [s.dotted for s in config.SETTINGS]
    assert len(keys) == len(set(keys))


def test_the_committed_reference_equals_the_settings_table() -> None:
    committed = Path(__file__).parents[2].joinpath("docs/configuration.md").read_text(encoding="utf-8")
    assert committed == config.reference_markdown(), (
        "docs/configuration.md is stale: python -m river_supervisor.config > docs/configuration.md"
    )


def test_the_reference_lists_every_setting() -> None:
    text = config.reference_markdown()
    for setting in config.SETTINGS:
        assert f"| `{setting.key}` |" in text


# --- [metrics] --------------------------------------------------------------------------------


def test_metrics_are_off_by_default_and_listen_takes_host_and_port() -> None:
    assert load("").metrics.listen is None
    assert load('[metrics]\nlisten = "127.0.0.1:9464"\n').metrics.listen == "127.0.0.1:9464"
    assert load('[metrics]\nlisten = "[::1]:9464"\n').metrics.listen == "[::1]:9464"
    assert (
        load("", environ={"RIVER_SUPERVISOR_METRICS_LISTEN": "0.0.0.0:9464"}).metrics.listen == "0.0.0.0:9464"
    )


@pytest.mark.parametrize("value", ['"9464"', '"127.0.0.1"', '"127.0.0.1:0"', '"::1:9464"', '":9464"', "9464"])
def test_a_bad_metrics_address_names_the_key_and_the_form(value: str) -> None:
    message = error(f"[metrics]\nlisten = {value}\n")
    assert message.startswith(f'{FILE}: [metrics] listen: expected an address "host:port"')
