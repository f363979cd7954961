"""Unique keys against River's golden vectors (riverqueue/river conformance/fixtures/unique_keys.json).

The cases are River's, revision 1, copied verbatim except the ``selected_unique_paths`` cases: those
select fields by Go struct tags (``river:"unique"``), which dict arguments do not have.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest
from river_supervisor.errors import UsageError
from river_supervisor.unique import (
    UniqueOpts,
    go_json,
    states_to_bitmask,
    truncate,
    unique_key,
)

# (name, kind, args as River's fixture wrote them, options, queue, now, scheduled_at, sha256, mask)
CASES: list[tuple[str, str, str, dict[str, Any], str, str, str | None, str, int]] = [
    (
        "nested_struct_wire_order",
        "conformance_all_args",
        r'{"nested": {"z": 1, "a": 2}}',
        {"by_args": True},
        "default",
        "2026-01-02T03:04:05.6789Z",
        None,
        "46ff499cb031d0458bb00ef87e7b83321eefb6e7534497c279c4ae0f474cdde0",
        245,
    ),
    (
        "all_args_sorted_and_escaped",
        "conformance_all_args",
        r'{"zeta": "quoted \\\"value\\\" and \\\\ slash", "alpha": "\u003calpha\u003e\u0026\u2028line",'
        r' "maximum": 9007199254740991}',
        {"by_args": True},
        "default",
        "2026-01-02T03:04:05.6789Z",
        None,
        "7a84c62c8d470ca388a0a1e41c311b9eb1ea21f7b88157ceb876fc82e698b6af",
        245,
    ),
    (
        "all_args_literal_path_syntax",
        "conformance_all_args",
        r'{"": 0, "a.b": 1, "@x": 2, ":lead": 3, "!bang": 4, "[open": 5, "{brace": 6, "a\\b": 7}',
        {"by_args": True},
        "default",
        "2026-01-02T03:04:05.6789Z",
        None,
        "1d254dda1efe1009ffb205ede791d481545d66abb8542e85f0d895415b05cdf9",
        245,
    ),
    (
        "all_args_escaped_key_encoding",
        "conformance_all_args",
        r'{"a\"b": 1, "line\n": 2, "é": 3, "a\u003cb": 4, "a\u0026b": 5, "a\u2028b": 6}',
        {"by_args": True},
        "default",
        "2026-01-02T03:04:05.6789Z",
        None,
        "bab84635792449d758b18950f6f014bfb16d26430e798d84afee9fc9cb793163",
        245,
    ),
    (
        "numeric_boundaries",
        "conformance_numeric_boundaries",
        '{"exponent": 1e+100, "fraction": 1.25, "maximum": 9223372036854775807,'
        ' "minimum": -9223372036854775808, "unsigned_maximum": 18446744073709551615}',
        {"by_args": True},
        "default",
        "2026-01-02T03:04:05.6789Z",
        None,
        "2c1533b3ab43068407d14e82ddb34a295a51375ae3a27fef6931123f07677f38",
        245,
    ),
    (
        "typed_collections_and_nulls",
        "conformance_all_args",
        '{"empty": [], "labels": {"alpha": "first", "k10": "ten", "k2": "two", "zulu": "last"},'
        ' "matrix": [[3, 1], [], [2]], "missing": null,'
        ' "objects": [{"zulu": "z", "alpha": 1}, {"zulu": "y", "alpha": null}], "pointer": null}',
        {"by_args": True},
        "default",
        "2026-01-02T03:04:05.6789Z",
        None,
        "66d457888b4b71f0a0041251f75d494e1ac543717283d84633a274648559306d",
        245,
    ),
    (
        "typed_empty_args",
        "conformance_all_args",
        "{}",
        {"by_args": True},
        "default",
        "2026-01-02T03:04:05.6789Z",
        None,
        "fe05a58ddb79a8d4544da962582d9a290d59788c920afd3597da3a62e3c1b0ac",
        245,
    ),
    (
        "typed_escaping",
        "conformance_all_args",
        r'{"a\u003cb\u003e": "\u003cangle\u003e", "controls": "\b\f\n\r\t\u0000\u0001\u001f\u007f",'
        r' "html": "\u003ca href=\"x\"\u003e\u0026amp;\u003c/a\u003e",'
        r' "keys": {"\u003ck\u003e": 1, "a\u0026b": 2, "é": 3, "é\u003c": 4},'
        r' "separators": "line\u2028paragraph\u2029end", "unicode": "é😀/\\", "é\u0026": "unicode key"}',
        {"by_args": True},
        "default",
        "2026-01-02T03:04:05.6789Z",
        None,
        "a4c2a164225cba2e3ae56edbc11258e49a7325d73a9b70e5c9b47a51963d00c5",
        245,
    ),
    (
        "typed_time_values",
        "conformance_all_args",
        '{"fraction": "2026-01-02T03:04:05.5Z", "micros": "2026-01-02T03:04:05.123456Z",'
        ' "millis": "2026-01-02T03:04:05.12Z", "whole": "2026-01-02T03:04:05Z"}',
        {"by_args": True},
        "default",
        "2026-01-02T03:04:05.6789Z",
        None,
        "18b38780de3019cc75d49ff24a74eecdcff99fda0bb36c0244a35f262b15322b",
        245,
    ),
    (
        "typed_float_formatting",
        "conformance_all_args",
        '{"below_large": 999999999999999900000, "large": 100000000000000000000, "large_boundary": 1e+21,'
        ' "largest": 1.7976931348623157e+308, "negative": -1.5e-9, "negative_zero": -0, "one": 1,'
        ' "single": 1.1, "single_large": 1e+21, "single_small": 1e-7, "small": 1e-7,'
        ' "small_boundary": 0.000001, "smallest": 5e-324, "tenth": 0.1}',
        {"by_args": True},
        "default",
        "2026-01-02T03:04:05.6789Z",
        None,
        "dc330477ebe8bf2bc3402476365fcfe22c82253f744481c49a23f760f059cad4",
        245,
    ),
    (
        "period_from_now",
        "conformance_simple",
        '{"id": 42}',
        {"by_period": 5400.0},
        "default",
        "2026-01-02T03:04:05.6789Z",
        None,
        "5396f06a082abd7a929915135ebd363a9a47d800176b03ce7736f93a5ba9e22e",
        245,
    ),
    (
        "period_from_schedule",
        "conformance_simple",
        '{"id": 42}',
        {"by_period": 3600.0},
        "default",
        "2026-01-02T03:04:05.6789Z",
        "2026-01-02T05:21:05.6789Z",
        "b7f3c49952996b760b8b3ff6cf48f426e03a6ef0f004fb6faa51725365cf309a",
        245,
    ),
    (
        "period_from_non_utc_now",
        "conformance_simple",
        '{"id": 42}',
        {"by_period": 3600.0},
        "default",
        "2026-01-01T22:04:05.6789-05:00",
        None,
        "5396f06a082abd7a929915135ebd363a9a47d800176b03ce7736f93a5ba9e22e",
        245,
    ),
    (
        "period_from_non_utc_schedule",
        "conformance_simple",
        '{"id": 42}',
        {"by_period": 3600.0},
        "default",
        "2026-01-02T03:04:05.6789Z",
        "2026-01-02T10:51:05.6789+05:30",
        "b7f3c49952996b760b8b3ff6cf48f426e03a6ef0f004fb6faa51725365cf309a",
        245,
    ),
    (
        "queue_without_kind",
        "conformance_simple",
        '{"id": 42}',
        {"by_queue": True, "exclude_kind": True},
        "priority_emails",
        "2026-01-02T03:04:05.6789Z",
        None,
        "d20ce47da8e8015e68b020bbca2b17494139519ae05f8985e5992db4d8dd8a09",
        245,
    ),
    (
        "all_dimensions_custom_states",
        "conformance_simple",
        '{"id": 42}',
        {
            "by_args": True,
            "by_period": 60.0,
            "by_queue": True,
            "by_state": ("available", "completed", "pending", "running", "scheduled"),
        },
        "priority_emails",
        "2026-01-02T03:04:05.6789Z",
        "2026-01-02T05:21:05.6789Z",
        "6f20262e7b1fa9beaf98255f23030800376636484a98b20c2c04a303bab5a8d5",
        213,
    ),
    # typed_only_cases: Go sorted the map keys ("10" before "2"); a dict built in that order matches.
    (
        "typed_integer_like_map_keys",
        "conformance_all_args",
        '{"empty": [], "labels": {"10": "ten", "2": "two", "alpha": "first", "zulu": "last"},'
        ' "matrix": [], "missing": null, "objects": [], "pointer": null}',
        {"by_args": True},
        "default",
        "2026-01-02T03:04:05.6789Z",
        None,
        "38406019aea1ea67f81186d845e983b197b2d919ded5eca871e4fef0c8b0ad30",
        245,
    ),
]


def _parse_int(literal: str) -> int | float:
    # JSON "-0" is a float zero with a sign in Go's encoding; keep the sign.
    return -0.0 if literal == "-0" else int(literal)


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_unique_key_matches_river_golden(case: tuple) -> None:
    _name, kind, args_json, options, queue, now, scheduled_at, expected, mask = case
    args = json.loads(args_json, parse_int=_parse_int)
    opts = UniqueOpts(**options)
    opts.validate()
    key = unique_key(
        opts,
        kind=kind,
        args=args,
        queue=queue,
        scheduled_at=_time(scheduled_at) if scheduled_at else None,
        now=_time(now),
    )
    assert key.hex() == expected
    assert opts.states_bitmask() == mask


@pytest.mark.xfail(
    reason="River rebuilds the top level with gjson/sjson path syntax; an empty key ''"
    " or integer-like keys take a form not reproduced yet",
    strict=True,
)
def test_unique_key_map_order_and_negative_zero() -> None:
    args = json.loads('{"2": 2, "10": 10, "zero": -0, "\U0001f600": 1, "": 2}', parse_int=_parse_int)
    key = unique_key(
        UniqueOpts(by_args=True),
        kind="conformance_all_args",
        args=args,
        queue="default",
        scheduled_at=None,
        now=_time("2026-01-02T03:04:05.6789Z"),
    )
    assert key.hex() == "fcdf33e0c39c1fc7e956876345a985f2418bd69c6e4d6a5c794abf1e78cdfdb6"


def test_default_states_are_rivers_245() -> None:
    assert UniqueOpts(by_args=True).states_bitmask() == 245
    but_cancelled_discarded = ["available", "completed", "pending", "retryable", "running", "scheduled"]
    assert states_to_bitmask(but_cancelled_discarded) == 245
    assert states_to_bitmask(["available", "scheduled"]) == 129


@pytest.mark.parametrize(
    "opts, message",
    [
        (UniqueOpts(by_period=0.5), "by_period"),
        (UniqueOpts(by_state=("available", "running")), "must include"),
        (UniqueOpts(by_state=("available", "pending", "running", "scheduled", "sleeping")), "unknown"),
    ],
)
def test_invalid_unique_options_are_usage_errors(opts: UniqueOpts, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        opts.validate()


def test_go_json_float_and_escape_forms() -> None:
    assert go_json(1e21) == "1e+21"
    assert go_json(1e20) == "100000000000000000000"
    assert go_json(-1.5e-9) == "-1.5e-9"
    assert go_json(0.000001) == "0.000001"
    assert go_json(2.0) == "2"
    assert go_json("<&>\u2028\x7f") == '"\\u003c\\u0026\\u003e\\u2028\x7f"'


def test_truncate_follows_go_zero_time() -> None:
    moment = _time("2026-01-02T03:04:05.6789Z")
    assert truncate(moment, 3600) == _time("2026-01-02T03:00:00Z")
    assert truncate(moment, 7) == _time("2026-01-02T03:04:05Z") - (
        (moment.replace(microsecond=0) - _time("0001-01-01T00:00:00Z")).total_seconds() % 7
    ) * (_time("2026-01-02T03:04:06Z") - _time("2026-01-02T03:04:05Z"))
