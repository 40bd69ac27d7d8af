"""A real HTTP receiver on loopback for rest-hook notifications: it records every request
and answers the statuses it is told to (then 200)."""

from __future__ import annotations

import http.server
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from loopback import serving


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    port: int
    requests: list[Received] = field(default_factory=list)
    failures: list[int] = field(default_factory=list)  # statuses to answer first

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def wait(self, count: int, seconds: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + seconds
        while len(self.requests) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.requests


@contextmanager
def running_receiver(port: int = 0, failures: tuple[int, ...] = ()) -> Iterator[Receiver]:
    receiver = Receiver(port, failures=list(failures))

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # connections kept alive, as real receivers do

        def _record(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            receiver.requests.append(Received(
                self.command, self.path, {k.lower(): v for k, v in self.headers.items()},
                self.rfile.read(length) if length else b""))
            status = receiver.failures.pop(0) if receiver.failures else 200
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        do_POST = do_PUT = _record

        def log_message(self, *args: object) -> None:
            pass

    class Server(http.server.ThreadingHTTPServer):
        request_queue_size = 256  # (the default 5 drops bursts of connections)

    server = Server(("127.0.0.1", port), Handler)
    receiver.port = server.server_address[1]
    with serving(server):
        yield receiver
