"""River's retry policy and attempt-error format, without a database."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, cast

import pytest
from river_supervisor.retry import attempt_error, format_time, retry_delay

PROTOCOL = json.loads((Path(__file__).parents[1] / "conformance" / "protocol.json").read_text())


@pytest.mark.parametrize("errors_count, base", [(0, 1), (1, 16), (2, 81), (3, 256), (23, 331776)])
def test_retry_delay_is_error_count_to_the_fourth_with_ten_percent_jitter(
    errors_count: int, base: int
) -> None:
    rng = random.Random(errors_count)
    delays = [retry_delay(errors_count, rng) for _ in range(500)]
    assert all(base * 0.9 <= d <= base * 1.1 for d in delays)
    assert min(delays) < base * 0.95 and max(delays) > base * 1.05


def test_retry_delay_is_capped_like_go_durations() -> None:
    assert retry_delay(10_000, random.Random(1)) < 300 * 365 * 86400 * 1.1


def test_attempt_error_matches_rivers_json() -> None:
    reference = PROTOCOL["attempt_error"]
    at = datetime.fromisoformat(reference["at"].replace("Z", "+00:00"))
    built = attempt_error(at, reference["attempt"], reference["error"], reference["trace"])
    assert built == reference
    assert list(built) == list(reference)


@pytest.mark.parametrize(
    "moment, text",
    [
        (datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "2026-01-02T03:04:05Z"),
        (datetime(2026, 1, 2, 3, 4, 5, 120000, tzinfo=UTC), "2026-01-02T03:04:05.12Z"),
        (
            datetime(2026, 1, 2, 4, 4, 5, 1, tzinfo=timezone(timedelta(hours=1))),
            "2026-01-02T03:04:05.000001Z",
        ),
    ],
)
def test_times_are_rfc3339_utc_like_go(moment: datetime, text: str) -> None:
    assert format_time(moment) == text


def test_storable_replaces_nul_and_lone_surrogates_and_keeps_pairs() -> None:
    from river_supervisor.storable import find_unstorable, storable, storable_json

    assert storable("a\x00b\udc80c\U0001f600") == "a\ufffdb\ufffdc\U0001f600"
    assert json.loads(storable_json(json.dumps({"x": "a\x00\ud800", "ok": "\U0001f600"}))) == {
        "x": "a\ufffd\ufffd",
        "ok": "\U0001f600",
    }
    assert storable_json('{"a":"\\\\u0000"}') == '{"a":"\\\\u0000"}'  # an escaped backslash, not a NUL
    assert find_unstorable({"a": [1, {"b": "x\x00"}]}, "args") == "args.a[1].b"
    assert find_unstorable({"a": "\U0001f600"}, "args") is None


def test_one_rule_names_where_and_what_for_the_cli_and_the_insert_api() -> None:
    from river_supervisor.insert import InvalidJob, JobSpec, insert_many
    from river_supervisor.storable import unstorable_problem

    assert unstorable_problem({"note": "a\x00b"}) == (
        "note: holds a NUL character (\\u0000), which PostgreSQL cannot store"
    )
    assert unstorable_problem({"a": {"items": ["ok", "\ud800"]}}) == (
        "a.items[1]: holds a lone surrogate (\\ud800), which is not text"
    )
    assert unstorable_problem({"k\x00": 1}, "args") == (
        "a key of args: holds a NUL character (\\u0000), which PostgreSQL cannot store"
    )
    assert unstorable_problem({"ok": ["\U0001f600", 1, None]}) is None
    # The insert API refuses with the same words, before any SQL (so with no connection at all).
    with pytest.raises(InvalidJob) as refused:
        insert_many(cast(Any, None), [JobSpec("test.noop", {"note": "a\x00b"})])
    assert str(refused.value) == "args.note: holds a NUL character (\\u0000), which PostgreSQL cannot store"
