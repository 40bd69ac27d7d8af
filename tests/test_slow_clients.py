"""Slow or half-sent requests are closed after the header timeout (slowloris), on a real
server; complete requests on the same server are unaffected."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httpx
import pytest
from server_process import ServerProcess


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    started = ServerProcess(tmp_path_factory.mktemp("slow") / "slow.db",
                            env={"FHIR_HEADER_TIMEOUT": "1"})
    try:
        yield started
    finally:
        started.stop()


def _closed_after(server: ServerProcess, sent: bytes) -> float:
    """Seconds until the server closes a connection that sent ``sent`` and then nothing."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        started = time.monotonic()
        if sent:
            sock.sendall(sent)
        while sock.recv(65536):  # a complete response may come first; then the close
            pass
        return time.monotonic() - started


def test_a_connection_that_sends_nothing_is_closed(server):
    assert _closed_after(server, b"") < 15


def test_half_sent_headers_are_closed(server):
    assert _closed_after(server, b"GET /fhir/metadata HTTP/1.1\r\nHost: x\r\nAccept: ") < 15


def test_a_kept_alive_connection_that_stalls_in_its_next_headers_is_closed(server):
    request = b"GET /fhir/Patient?_summary=count HTTP/1.1\r\nHost: x\r\n\r\n"
    assert _closed_after(server, request + b"GET /fhir/metadata HTTP/1.1\r\nHo") < 15


def test_complete_requests_are_answered(server):
    with httpx.Client() as http:
        for _ in range(3):
            assert http.get(f"{server.base}/Patient?_summary=count").status_code == 200
            time.sleep(0.6)  # pauses between requests shorter than keep-alive are fine
