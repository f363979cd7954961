"""``parse_duration``: the strings and numbers people write for durations."""

from __future__ import annotations

import pytest
from river_supervisor.config import parse_duration
from river_supervisor.durations import format_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("15s", 15.0),
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("2d", 172800.0),
        ("250ms", 0.25),
        ("1m30s500ms", 90.5),
        ("1.5h", 5400.0),
        ("0s", 0.0),
        (" 10s ", 10.0),
        ("90", 90.0),
        ("2.5", 2.5),
        (90, 90.0),
        (0.5, 0.5),
        (0, 0.0),
    ],
)
def test_parse_duration_reads_units_and_plain_seconds(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "bad",
    ["", "s", "-5s", "5 s", "5x", "1h1h", "30m1h", "5sm", "1,5s", "fifteen", "1h 30m", "inf", "nan"],
)
def test_parse_duration_rejects_malformed_strings(bad: str) -> None:
    with pytest.raises(ValueError, match="a duration such as"):
        parse_duration(bad)


@pytest.mark.parametrize("bad", [-1, -0.5, float("inf"), float("nan"), True, None, [1], {"s": 1}])
def test_parse_duration_rejects_negative_non_finite_and_non_numbers(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (15, "15s"),
        (3600, "1h"),
        (5400, "1h30m"),
        (604800, "7d"),
        (0.25, "250ms"),
        (90.5, "1m30s500ms"),
    ],
)
def test_format_duration_is_read_back_by_parse_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == seconds
