"""Every request to a local server gets an HTTP answer within a bounded time, and a burst of connections is
accepted: malformed requests sent over raw sockets (as no HTTP library would send them), each followed by a
normal request the server must still answer. Socket timeouts, not clocks, decide that an answer never came.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
from collections.abc import Callable

import pytest

from local.console import serve as console_server
from local.marketplace_emulator import EmulatorServer
from local.run import free_port, local_aws_environment
from tests.integration.local_servers.conftest import Server, closed_port, exchange, status_of

BURST = 64
SERVERS = ("gateway", "emulator", "console")


@pytest.fixture(params=SERVERS)
def server(request: pytest.FixtureRequest) -> Server:
    return request.getfixturevalue(request.param)  # type: ignore[no-any-return]


def post(path: str, body: bytes, content_type: str, *extra: str) -> bytes:
    head = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Type: {content_type}", *extra]
    if not any(line.lower().startswith("content-length:") for line in extra):
        head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


# name → (the request for a server's body-reading route, the statuses it may get; None: closed, no answer)
Case = Callable[[str], bytes]
# A body the route's own code reads and refuses (the gateway's handlers, the emulator's admin API, console).
HANDLED = {400, 403, 404, 422}
MALFORMED: dict[str, tuple[Case, set[int] | None]] = {
    "body not UTF-8": (lambda p: post(p, b'{"a": "\xff\xfe\xc3"}', "application/json"), HANDLED),
    "body in UTF-16": (
        lambda p: post(p, '{"a": "b"}'.encode("utf-16"), "application/json"),
        HANDLED,
    ),
    "form not UTF-8": (
        lambda p: post(p, b"x-amzn-marketplace-token=\xff\xfe", "application/x-www-form-urlencoded"),
        HANDLED,
    ),
    "Content-Length not a number": (
        lambda p: post(p, b"{}", "application/json", "Content-Length: 2x"),
        {400},
    ),
    "Content-Length negative": (lambda p: post(p, b"{}", "application/json", "Content-Length: -1"), {400}),
    "Content-Length twice, differing": (
        lambda p: post(p, b"{}", "application/json", "Content-Length: 2", "Content-Length: 3"),
        {400},
    ),
    "Content-Length huge": (
        lambda p: post(p, b"{}", "application/json", "Content-Length: 99999999999999"),
        {413},
    ),
    "body shorter than Content-Length": (
        lambda p: post(p, b"{}", "application/json", "Content-Length: 100"),
        {408},
    ),
    "headers never finished": (lambda p: f"GET {p} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode(), {408}),
    "request line never finished": (lambda p: f"GET {p}".encode(), None),
    "null byte in the path": (lambda p: f"GET {p}\x00x HTTP/1.1\r\nHost: x\r\n\r\n".encode(), {400}),
    "8 KB path": (lambda p: f"GET /{'a' * 8300} HTTP/1.1\r\nHost: x\r\n\r\n".encode(), {414}),
    "70 KB path (http.server's own 414)": (
        lambda p: f"GET /{'a' * 70_000} HTTP/1.1\r\nHost: x\r\n\r\n".encode(),
        {414},
    ),
    "too many headers (http.server's own 431)": (
        lambda p: (f"GET {p} HTTP/1.1\r\n" + "".join(f"X-{i}: y\r\n" for i in range(120)) + "\r\n").encode(),
        {431},
    ),
    "no HTTP version (HTTP/0.9)": (lambda p: f"GET {p}\r\n".encode(), {400}),
    "not HTTP at all": (lambda p: b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", {400}),
    "path that looks like an authority": (lambda p: b"GET //[x/ HTTP/1.1\r\nHost: x\r\n\r\n", {403, 404}),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_a_malformed_request_gets_an_answer_and_the_server_serves_on(server: Server, case: str) -> None:
    build, expected = MALFORMED[case]
    try:
        answer = exchange(server.port, build(server.post_path))
    except TimeoutError:
        pytest.fail(f"{server.name}: no answer to '{case}' (the connection was neither answered nor closed)")
    except ConnectionResetError:
        pytest.fail(f"{server.name}: '{case}' reset the connection without an answer")
    if expected is None:
        assert answer == b"", f"{server.name}: an unfinished request line got {answer[:100]!r}"
    else:
        assert status_of(answer) in expected, f"{server.name}: '{case}' got {answer[:300]!r}"
    assert status_of(exchange(server.port, server.normal_request)) < 400


def test_the_gateway_answers_options_as_cloudfront_and_api_gateway_do(gateway: Server) -> None:
    # No CORS anywhere (page and API share one origin): the bucket refuses it, API Gateway has no such method.
    page = exchange(gateway.port, b"OPTIONS / HTTP/1.1\r\nHost: x\r\nOrigin: https://a.example\r\n\r\n")
    assert status_of(page) == 403
    assert b"CORS is not enabled for this bucket" in page
    api = exchange(gateway.port, b"OPTIONS /api/register HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status_of(api) == 403
    assert b"Missing Authentication Token" in api


def test_a_burst_of_connections_waits_in_the_backlog_and_is_answered(gateway: Server) -> None:
    """Connections that arrive while a server cannot accept them wait in its listen backlog, all answered.

    With http.server's backlog of 5 the kernel takes only a handful: the others' connection attempts go
    unanswered (their connect times out), or are reset. The gateway is paused (SIGSTOP) while the burst
    connects; the emulator and the console have not started accepting yet.
    """
    emulator = EmulatorServer()
    dead = f"http://127.0.0.1:{closed_port()}"
    endpoints = {"emulator": {"url": dead}, "aws": {"url": dead}, "listings": {}}
    console = console_server(free_port(), endpoints, local_aws_environment("us-east-1", dead, dead))
    servers: list[tuple[str, int, bytes, Callable[[], None]]] = [
        ("emulator", emulator._server.server_address[1], b"GET /_emulator/health HTTP/1.1", emulator.start),
        (
            "console",
            console.server_address[1],
            b"GET / HTTP/1.1",
            threading.Thread(target=console.serve_forever, daemon=True).start,
        ),
    ]
    assert gateway.pid is not None
    os.kill(gateway.pid, signal.SIGSTOP)
    servers.append(
        (
            "gateway",
            gateway.port,
            b"GET /config.json HTTP/1.1",
            lambda: os.kill(gateway.pid or 0, signal.SIGCONT),
        )
    )
    try:
        for name, port, request_line, start_accepting in servers:
            connections = []
            try:
                for index in range(BURST):
                    try:
                        connections.append(socket.create_connection(("127.0.0.1", port), timeout=2))
                    except OSError as error:
                        pytest.fail(f"{name}: connection {index + 1} of {BURST} failed: {error!r}")
                start_accepting()
                statuses = []
                for connection in connections:
                    connection.settimeout(30)
                    connection.sendall(request_line + b"\r\nHost: x\r\nConnection: close\r\n\r\n")
                    answer = b""
                    while chunk := connection.recv(65536):
                        answer += chunk
                    statuses.append(status_of(answer))
                assert statuses == [200] * BURST, f"{name}: {statuses}"
            finally:
                for connection in connections:
                    connection.close()
    finally:
        os.kill(gateway.pid, signal.SIGCONT)
        emulator.stop()
        console.shutdown()
        console.server_close()


def test_a_burst_of_connections_is_answered_in_full(server: Server) -> None:
    """Every connection of a burst opened at once is accepted and answered (none reset or refused)."""
    ready = threading.Barrier(BURST)
    statuses: list[int] = []
    failures: list[str] = []
    lock = threading.Lock()

    def one() -> None:
        try:
            connection = socket.socket()
            connection.settimeout(30)
            ready.wait()
            connection.connect(("127.0.0.1", server.port))
            connection.sendall(server.normal_request.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"))
            answer = b""
            while chunk := connection.recv(65536):
                answer += chunk
            connection.close()
            with lock:
                statuses.append(status_of(answer))
        except (OSError, AssertionError) as error:
            with lock:
                failures.append(f"{type(error).__name__}: {error}")

    threads = [threading.Thread(target=one) for _ in range(BURST)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == [], f"{server.name}: {len(failures)} of {BURST} connections failed: {failures[:5]}"
    assert len(statuses) == BURST
    assert all(status < 400 for status in statuses), statuses
