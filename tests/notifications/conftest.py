"""A real HTTP server that receives webhooks, shared by the outbox and rule-webhook tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


class Receiver:
    """A real HTTP server on ``host`` (any port, or ``port``), answering POSTs from ``script``
    (then 200) after ``delay`` seconds; ``requests`` holds (headers, body, path) of each."""

    def __init__(self, script: list[int] | None = None, *, delay: float = 0.0, host: str = "127.0.0.1",
                 port: int = 0) -> None:
        self.script = list(script or [])
        self.delay = delay
        self.requests: list[tuple[dict[str, str], bytes, str]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers), body, self.path))
                time.sleep(receiver.delay)
                status = receiver.script.pop(0) if receiver.script else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://{host}:{self.port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receivers() -> Iterator[Any]:
    """``receivers(script, delay=..., host=..., port=...)`` starts a :class:`Receiver`; all are
    closed after the test."""
    made: list[Receiver] = []

    def make(script: list[int] | None = None, **kw: Any) -> Receiver:
        made.append(Receiver(script, **kw))
        return made[-1]

    yield make
    for receiver in made:
        receiver.close()
