"""The loopback ingest itself: envelope parsing, encodings, endpoints, waiting."""

from __future__ import annotations

import gzip
import json
import urllib.error
import urllib.request
import zlib

import pytest

from tests.harness import fixtures
from tests.harness.sentry_ingest import EnvelopeError, SentryIngest, parse_envelope
from tests.harness.wait import WaitTimeout

sentry_ingest = fixtures.sentry_ingest


def _envelope(*items: tuple[dict[str, object], bytes], header: dict[str, object] | None = None) -> bytes:
    out = [json.dumps(header or {"event_id": "abc"}).encode()]
    for item_header, payload in items:
        out += [json.dumps(item_header).encode(), payload]
    return b"\n".join(out) + b"\n"


def _post(ingest: SentryIngest, path: str, body: bytes, encoding: str | None = None) -> int:
    req = urllib.request.Request(f"http://127.0.0.1:{ingest.port}{path}", data=body, method="POST")
    req.add_header("Content-Type", "application/x-sentry-envelope")
    if encoding:
        req.add_header("Content-Encoding", encoding)
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_parse_envelope_with_length_and_newline_delimited_items() -> None:
    payload = b'{"a": "x\\ny"}'  # a JSON payload whose text contains an escaped newline
    raw = _envelope(
        ({"type": "event", "length": len(payload)}, payload),
        ({"type": "check_in"}, b'{"status": "ok"}'),
    )
    header, items = parse_envelope(raw)
    assert header == {"event_id": "abc"}
    assert [(h["type"], json.loads(p)) for h, p in items] == [
        ("event", {"a": "x\ny"}),
        ("check_in", {"status": "ok"}),
    ]


def test_parse_envelope_rejects_a_truncated_item() -> None:
    with pytest.raises(EnvelopeError, match="truncated"):
        parse_envelope(b'{}\n{"type": "event", "length": 100}\n{"a": 1}\n')


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [(None, lambda b: b), ("gzip", gzip.compress), ("deflate", zlib.compress)],
)
def test_ingest_decodes_envelope_bodies(sentry_ingest: SentryIngest, encoding, compress) -> None:
    body = compress(_envelope(({"type": "event"}, b'{"message": "hi", "tags": {"k": "v"}}')))
    assert _post(sentry_ingest, "/api/1/envelope/", body, encoding) == 200
    [item] = sentry_ingest.wait_for_items(type="event", tag=("k", "v"))
    assert item.message == "hi"
    assert sentry_ingest.requests()[0].content_encoding == encoding


def test_ingest_accepts_the_legacy_store_endpoint(sentry_ingest: SentryIngest) -> None:
    body = gzip.compress(json.dumps({"message": "stored", "level": "error"}).encode())
    assert _post(sentry_ingest, "/api/1/store/", body, "gzip") == 200
    assert [e.message for e in sentry_ingest.events()] == ["stored"]


def test_ingest_rejects_unknown_paths_and_bad_bodies_and_says_so(sentry_ingest: SentryIngest) -> None:
    assert _post(sentry_ingest, "/nope", b"{}") == 404
    assert _post(sentry_ingest, "/api/1/envelope/", b"not gzip", "gzip") == 400
    assert sentry_ingest.items() == []
    with pytest.raises(WaitTimeout) as info:
        sentry_ingest.wait_for_items(type="event", timeout=0.2)
    assert "REJECTED /api/1/envelope/ (gzip)" in str(info.value)
    assert "received 0 item(s) in 2 request(s)" in str(info.value)


def test_wait_for_wakes_on_arrival_and_clear_forgets(sentry_ingest: SentryIngest) -> None:
    _post(sentry_ingest, "/api/1/envelope/", _envelope(({"type": "check_in"}, b'{"monitor_slug": "m"}')))
    assert [c.payload["monitor_slug"] for c in sentry_ingest.check_ins()] == ["m"]
    assert sentry_ingest.check_ins(monitor_slug="other") == []
    sentry_ingest.clear()
    assert sentry_ingest.items() == [] and sentry_ingest.requests() == []


def test_dsn_points_at_the_server() -> None:
    with SentryIngest() as ingest:
        assert ingest.dsn == f"http://public@127.0.0.1:{ingest.port}/1"
    with pytest.raises(RuntimeError):
        _ = ingest.port
