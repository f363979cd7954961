"""A loopback Sentry ingest: a real HTTP server that receives what the real SDK sends.

The supervisor, its workers and the CLI are separate processes that each run their own
``sentry_sdk`` client, so the only faithful place to observe them is the wire. This server
listens on ``127.0.0.1:0`` in a thread of the test process, accepts

- ``POST /api/<project>/envelope/``: an envelope, ``Content-Encoding: gzip`` (the SDK's default),
  ``deflate``, ``br`` (only if the ``brotli`` module is importable; the SDK only sends ``br`` when it
  is) or none;
- ``POST /api/<project>/store/``: the legacy single-event JSON body,

parses every envelope into items and keeps them. Tests wait on facts (``wait_for``), never on time.

Envelope format (what sentry-sdk 2.75 sends, one envelope per event or check-in): a header JSON line,
then per item a header JSON line (``{"type": ..., "length": N}``) and N payload bytes followed by a
newline; without ``length`` the payload runs to the next newline.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

from tests.harness.wait import WaitTimeout

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Item:
    """One envelope item as received: its header, its payload (JSON-decoded when possible)."""

    type: str
    header: dict[str, Any]
    payload: Any  # dict for events and check-ins; bytes when the payload is not JSON
    envelope: dict[str, Any]  # the envelope header (event_id, sent_at, dsn/trace, ...)
    path: str  # the request path it came in on
    client_port: int  # the client's TCP port: tells processes (and connections) apart

    @property
    def tags(self) -> dict[str, str]:
        """Event tags as a dict (Sentry accepts a dict or a list of pairs)."""
        raw = self.payload.get("tags") if isinstance(self.payload, dict) else None
        if isinstance(raw, dict):
            return {str(k): str(v) for k, v in raw.items()}
        if isinstance(raw, list):
            return {str(k): str(v) for k, v in raw}
        return {}

    def tag(self, key: str) -> str | None:
        return self.tags.get(key)

    @property
    def level(self) -> str | None:
        return self.payload.get("level") if isinstance(self.payload, dict) else None

    @property
    def message(self) -> str | None:
        """The event's message: ``message`` (capture_message) or ``logentry`` (logging)."""
        if not isinstance(self.payload, dict):
            return None
        msg = self.payload.get("message")
        if isinstance(msg, str):
            return msg
        entry = self.payload.get("logentry") or msg
        if isinstance(entry, dict):
            return entry.get("formatted") or entry.get("message")
        return None

    @property
    def fingerprint(self) -> list[str] | None:
        return self.payload.get("fingerprint") if isinstance(self.payload, dict) else None

    def summary(self) -> str:
        if self.type == "check_in" and isinstance(self.payload, dict):
            p = self.payload
            return f"check_in {p.get('monitor_slug')} {p.get('status')} id={p.get('check_in_id')}"
        if self.type == "event":
            return f"event [{self.level}] {self.message!r} tags={self.tags} fp={self.fingerprint}"
        return f"{self.type} ({len(json.dumps(self.payload, default=str))} bytes)"


@dataclass(frozen=True, slots=True)
class Request:
    """One HTTP request as received, for assertions on the transport itself."""

    method: str
    path: str
    headers: dict[str, str]
    content_encoding: str | None
    body_bytes: int  # on the wire, before decompression
    items: int
    error: str | None = None
    body: bytes = b""  # decompressed, as parsed


class EnvelopeError(ValueError):
    pass


def parse_envelope(raw: bytes) -> tuple[dict[str, Any], list[tuple[dict[str, Any], bytes]]]:
    """Split an envelope into its header and (item header, raw payload) pairs."""
    first, _, rest = raw.partition(b"\n")
    try:
        header = json.loads(first) if first.strip() else {}
    except ValueError as exc:
        raise EnvelopeError(f"bad envelope header {first[:200]!r}: {exc}") from exc
    items: list[tuple[dict[str, Any], bytes]] = []
    while rest.strip():
        line, _, rest = rest.partition(b"\n")
        if not line.strip():
            continue
        try:
            item_header = json.loads(line)
        except ValueError as exc:
            raise EnvelopeError(f"bad item header {line[:200]!r}: {exc}") from exc
        length = item_header.get("length")
        if length is not None:
            if len(rest) < length:
                raise EnvelopeError(f"item of length {length} truncated at {len(rest)} bytes")
            payload, rest = rest[:length], rest[length:]
            rest = rest.removeprefix(b"\n")
        else:
            payload, _, rest = rest.partition(b"\n")
        items.append((item_header, payload))
    return header, items


def decode_body(body: bytes, encoding: str | None) -> bytes:
    enc = (encoding or "identity").strip().lower()
    if enc in ("", "identity"):
        return body
    if enc in ("gzip", "x-gzip"):
        return gzip.decompress(body)
    if enc == "deflate":
        return zlib.decompress(body)
    if enc == "br":
        try:
            import brotli  # type: ignore[import-not-found]
        except ImportError as exc:  # the SDK sends br only when brotli imports, in the same venv
            raise EnvelopeError("Content-Encoding br but the brotli module is not installed") from exc
        return bytes(brotli.decompress(body))
    raise EnvelopeError(f"unsupported Content-Encoding {encoding!r}")


def _decode_payload(payload: bytes) -> Any:
    try:
        return json.loads(payload)
    except ValueError:
        return payload


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDK's urllib3 pool expects
    timeout = 30  # an idle keep-alive connection ends eventually
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, add=False)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline().strip():  # trailers
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        body = self._read_body()
        encoding = self.headers.get("Content-Encoding")
        path = self.path.split("?", 1)[0]
        parts = [p for p in path.split("/") if p]
        headers = {k.lower(): v for k, v in self.headers.items()}
        endpoint = parts[2] if len(parts) == 3 and parts[0] == "api" else None
        if endpoint not in ("envelope", "store"):
            self.server.record(Request("POST", path, headers, encoding, len(body), 0, "unknown endpoint"), [])
            self._reply(404, {"detail": "unknown endpoint"})
            return
        client_port = self.client_address[1]
        try:
            raw = decode_body(body, encoding)
            if endpoint == "store":
                event = json.loads(raw)
                items = [Item("event", {"type": "event"}, event, {}, path, client_port)]
            else:
                env_header, pairs = parse_envelope(raw)
                items = [
                    Item(str(h.get("type")), h, _decode_payload(p), env_header, path, client_port)
                    for h, p in pairs
                ]
        except (EnvelopeError, ValueError, OSError, EOFError) as exc:
            self.server.record(Request("POST", path, headers, encoding, len(body), 0, str(exc)), [])
            self._reply(400, {"detail": str(exc)})
            return
        self.server.record(Request("POST", path, headers, encoding, len(body), len(items), body=raw), items)
        event_id = next((i.payload.get("event_id") for i in items if isinstance(i.payload, dict)), None)
        self._reply(200, {"id": event_id})


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, sink: SentryIngest) -> None:
        self._sink = sink
        self._connections: set[socket.socket] = set()
        self._conn_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def record(self, request: Request, items: list[Item]) -> None:
        self._sink._record(request, items)

    def track(self, conn: socket.socket, *, add: bool) -> None:
        with self._conn_lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def drop_connections(self) -> None:
        with self._conn_lock:
            conns = list(self._connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


@dataclass
class SentryIngest:
    """The running server and everything it has received. Thread-safe; start with ``start()``."""

    project: int = 1
    public_key: str = "public"
    _items: list[Item] = field(default_factory=list, init=False)
    _requests: list[Request] = field(default_factory=list, init=False)
    _cond: threading.Condition = field(default_factory=threading.Condition, init=False)
    _server: _Server | None = field(default=None, init=False)
    _thread: threading.Thread | None = field(default=None, init=False)

    def start(self) -> SentryIngest:
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="sentry-ingest",
            daemon=True,
        )
        self._thread.start()
        return self

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("SentryIngest not started")
        return int(self._server.server_address[1])

    @property
    def dsn(self) -> str:
        return f"http://{self.public_key}@127.0.0.1:{self.port}/{self.project}"

    def close(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._server.drop_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None

    def __enter__(self) -> SentryIngest:
        return self.start() if self._server is None else self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- what arrived ---------------------------------------------------------------------------

    def _record(self, request: Request, items: list[Item]) -> None:
        with self._cond:
            self._requests.append(request)
            self._items.extend(items)
            self._cond.notify_all()

    def requests(self) -> list[Request]:
        with self._cond:
            return list(self._requests)

    def items(self, type: str | None = None, tag: tuple[str, str] | None = None) -> list[Item]:
        """Items in arrival order, optionally of one ``type`` and carrying tag ``(key, value)``."""
        with self._cond:
            items = list(self._items)
        if type is not None:
            items = [i for i in items if i.type == type]
        if tag is not None:
            key, value = tag
            items = [i for i in items if i.tag(key) == value]
        return items

    def events(self, tag: tuple[str, str] | None = None) -> list[Item]:
        return self.items(type="event", tag=tag)

    def check_ins(self, monitor_slug: str | None = None) -> list[Item]:
        return [
            i
            for i in self.items(type="check_in")
            if monitor_slug is None or i.payload.get("monitor_slug") == monitor_slug
        ]

    def clear(self) -> None:
        with self._cond:
            self._items.clear()
            self._requests.clear()

    def describe(self, limit: int = 40) -> str:
        """What was received, for failure messages."""
        items = self.items()
        errors = [r for r in self.requests() if r.error]
        lines = [f"received {len(items)} item(s) in {len(self.requests())} request(s):"]
        lines += [f"  {i.summary()}" for i in items[-limit:]]
        if len(items) > limit:
            lines.insert(1, f"  ... {len(items) - limit} earlier item(s) omitted")
        lines += [f"  REJECTED {r.path} ({r.content_encoding}): {r.error}" for r in errors]
        return "\n".join(lines)

    def wait_for(
        self,
        predicate: Callable[[list[Item]], T],
        timeout: float = 10.0,
        describe: str = "sentry items",
    ) -> T:
        """Return the first truthy ``predicate(all items so far)``, re-checked on every arrival.

        On timeout raise ``WaitTimeout`` (an AssertionError) listing what did arrive.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                result = predicate(list(self._items))
                if result:
                    return result
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
        raise WaitTimeout(f"timed out after {timeout}s waiting for {describe}\n{self.describe()}")

    def wait_for_items(
        self,
        type: str | None = None,
        tag: tuple[str, str] | None = None,
        count: int = 1,
        timeout: float = 10.0,
        where: Callable[[Item], bool] | None = None,
    ) -> list[Item]:
        """Wait until at least ``count`` matching items arrived; return all that match."""

        def matching(_: list[Item]) -> list[Item]:
            found = [i for i in self.items(type=type, tag=tag) if where is None or where(i)]
            return found if len(found) >= count else []

        what = f"{count} item(s) type={type} tag={tag}" + (" matching a filter" if where else "")
        return self.wait_for(matching, timeout=timeout, describe=what)

    def __iter__(self) -> Iterator[Item]:
        return iter(self.items())
