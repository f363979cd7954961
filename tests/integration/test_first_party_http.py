"""plugins/http: ``http.request`` against a real loopback HTTP server."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from river_supervisor import JobCancel
from river_supervisor.plugins import call_handler
from river_supervisor.testing import make_job
from river_supervisor_http import HttpError, plugin


class _Handler(BaseHTTPRequestHandler):
    release: threading.Event

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def _reply(self, status: int, body: bytes, content_type: str = "text/plain") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/ok":
            self._reply(200, b"fine")
        elif self.path == "/fail":
            self._reply(500, b"x" * 5000 + b"database down")
        elif self.path == "/slow":
            self.release.wait(30)  # held until the test is over: the client must time out first
            self._reply(200, b"late")
        else:
            self._reply(404, b"no such page")

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        echo = {"path": self.path, "body": body.decode(), "type": self.headers.get("Content-Type")}
        self._reply(201, json.dumps(echo).encode(), "application/json")


@pytest.fixture
def server() -> Iterator[str]:
    release = threading.Event()
    handler = type("Handler", (_Handler,), {"release": release})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    release.set()
    httpd.shutdown()
    httpd.server_close()


def run(args: dict):
    return call_handler(plugin.jobs["http.request"].handler, make_job("http.request", args))


def test_plugin_declares_http_request():
    assert plugin.name == "http" and plugin.kinds == ["http.request"]


def test_get_returns_status_and_body(server):
    assert run({"url": f"{server}/ok"}) == {"status": 200, "body": "fine"}


def test_post_json_sends_a_json_body(server):
    result = run({"url": f"{server}/hook", "method": "post", "json": {"event": "paid", "id": 7}})
    assert result["status"] == 201
    echo = json.loads(result["body"])
    assert echo == {"path": "/hook", "body": '{"event": "paid", "id": 7}', "type": "application/json"}


def test_http_500_raises_with_status_and_body_tail(server):
    with pytest.raises(HttpError) as info:
        run({"url": f"{server}/fail"})
    assert info.value.status == 500
    message = str(info.value)
    assert message.startswith(f"http.request: GET {server}/fail: unexpected status 500 (expected 2xx)")
    assert message.endswith("database down") and len(info.value.body) == 1024


def test_expect_status_accepts_listed_codes(server):
    assert run({"url": f"{server}/missing", "expect_status": [404, 410]})["status"] == 404
    with pytest.raises(HttpError, match=r"unexpected status 200 \(expected 204\)"):
        run({"url": f"{server}/ok", "expect_status": 204})


def test_timeout_raises(server):
    with pytest.raises(HttpError, match=r"timed out after 0\.3s"):
        run({"url": f"{server}/slow", "timeout": 0.3})


def test_connection_refused_raises():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connections are refused
        with pytest.raises(HttpError, match=rf"GET http://127\.0\.0\.1:{port}/: .*refused"):
            run({"url": f"http://127.0.0.1:{port}/", "timeout": 5})


def test_credentials_never_appear_in_errors(server):
    url = server.replace("http://", "http://user:s3cret@") + "/fail"
    with pytest.raises(HttpError) as info:
        run({"url": url})
    assert "s3cret" not in str(info.value) and "user" not in str(info.value).split("---")[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"url": "file:///etc/passwd"}, "must be an http:// or https:// URL"),
        ({"url": "http://x", "json": {}, "body": ""}, "not both"),
        ({"url": "http://x", "expect_status": "200"}, "expect_status"),
        ({"url": "http://x", "headers": {"A": 1}}, "headers"),
        ({"url": "http://x", "method": "GET /"}, "method"),
    ],
)
def test_invalid_args_cancel_the_job(args, message):
    with pytest.raises(JobCancel, match=message):
        run(args)
