"""river-supervisor plugin ``http``: job kind ``http.request`` makes one HTTP request.

Args (JSON):

- ``url``: an ``http://`` or ``https://`` URL (other schemes, ``file:`` included, are refused);
- ``method``: default ``GET``; ``headers``: an object of strings;
- ``json``: a value sent as a JSON body (sets ``Content-Type: application/json``), or ``body``: a
  string sent as UTF-8; not both;
- ``expect_status``: an int or a list of ints (default: any 2xx);
- ``timeout``: seconds (number or duration string, default 30) for connecting and for each read;
  the whole response must also arrive within it.

Uses ``urllib`` from the standard library: no dependency. A status outside ``expect_status``
raises ``HttpError`` with the status and the last 1 KiB of the body, so the job is retried with
backoff; a timeout or a connection failure raises ``HttpError`` too. Invalid args raise
``JobCancel``. It returns ``{"status": 200, "body": "<last 1 KiB>"}``. URLs in messages lose their
``user:password@`` part.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

from river_supervisor import Job, JobCancel, Plugin
from river_supervisor.plugins import duration_seconds

plugin = Plugin("http")

DEFAULT_TIMEOUT = 30.0
BODY_TAIL = 1024
CHUNK = 65536


class HttpError(RuntimeError):
    def __init__(self, message: str, status: int | None = None, body: str = "") -> None:
        self.status = status
        self.body = body
        super().__init__(
            message + (f"\n--- body (last {BODY_TAIL} bytes) ---\n{body}" if body.strip() else "")
        )


@plugin.job("http.request")
def request(job: Job) -> dict[str, Any]:
    req, expect, timeout, shown = _build(job.args)
    where = f"http.request: {req.get_method()} {shown}"
    deadline = time.monotonic() + timeout
    try:
        response = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as exc:  # a status urllib treats as an error: still a response
        response = exc
    except TimeoutError as exc:
        raise HttpError(f"{where}: timed out after {timeout:g}s") from exc
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, TimeoutError | socket.timeout):
            raise HttpError(f"{where}: timed out after {timeout:g}s") from exc
        raise HttpError(f"{where}: {exc.reason}") from exc
    except (OSError, ValueError) as exc:
        raise HttpError(f"{where}: {exc}") from exc
    with response:
        status = response.status if hasattr(response, "status") else response.code
        body = _read_tail(response, deadline, where, timeout)
    if not _expected(status, expect):
        wanted = "2xx" if expect is None else ", ".join(str(code) for code in expect)
        raise HttpError(f"{where}: unexpected status {status} (expected {wanted})", status, body)
    return {"status": status, "body": body}


def _read_tail(response: Any, deadline: float, where: str, timeout: float) -> str:
    buf = bytearray()
    try:
        while chunk := response.read(CHUNK):
            buf += chunk
            del buf[:-BODY_TAIL]
            if time.monotonic() > deadline:
                raise HttpError(f"{where}: response still arriving after {timeout:g}s")
    except TimeoutError as exc:
        raise HttpError(f"{where}: timed out after {timeout:g}s reading the response") from exc
    return bytes(buf).decode("utf-8", errors="replace")


def _expected(status: int, expect: list[int] | None) -> bool:
    return 200 <= status < 300 if expect is None else status in expect


def _build(args: Mapping[str, Any]) -> tuple[urllib.request.Request, list[int] | None, float, str]:
    url = args.get("url")
    if not isinstance(url, str):
        raise JobCancel(f"http.request: args.url must be a string, got {url!r}")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise JobCancel(f"http.request: args.url must be an http:// or https:// URL, got {_shown(url)!r}")
    method = args.get("method", "GET")
    if not isinstance(method, str) or not method.isalpha():
        raise JobCancel(
            f"http.request: args.method must be an HTTP method such as GET or POST, got {method!r}"
        )
    headers = args.get("headers") or {}
    if not isinstance(headers, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        raise JobCancel("http.request: args.headers must map names to strings")
    headers = dict(headers)
    data: bytes | None = None
    if "json" in args and "body" in args:
        raise JobCancel("http.request: give args.json or args.body, not both")
    if "json" in args:
        data = json.dumps(args["json"]).encode()
        if not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = "application/json"
    elif "body" in args:
        if not isinstance(args["body"], str):
            raise JobCancel("http.request: args.body must be a string (use args.json for JSON values)")
        data = args["body"].encode()
    expect = _expect(args.get("expect_status"))
    try:
        timeout = duration_seconds(args.get("timeout", DEFAULT_TIMEOUT))
    except ValueError as exc:
        raise JobCancel(f"http.request: args.timeout: {exc}") from None
    req = urllib.request.Request(url, data=data, headers=headers, method=method.upper())
    return req, expect, timeout, _shown(url)


def _expect(value: Any) -> list[int] | None:
    if value is None:
        return None
    codes = [value] if isinstance(value, int) and not isinstance(value, bool) else value
    if (
        not isinstance(codes, list)
        or not codes
        or not all(isinstance(c, int) and 100 <= c <= 599 for c in codes)
    ):
        raise JobCancel(
            f"http.request: args.expect_status must be a status code or a list of them, got {value!r}"
        )
    return codes


def _shown(url: str) -> str:
    """The URL without ``user:password@``: it goes into job errors and logs."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit(parts._replace(netloc=host))
