"""The three local servers, each started as local mode starts it, for tests that talk to them over raw
sockets.

- `gateway`: `python -m local.gateway` for a synthesized listing, its AWS services pointed at a closed port
  (the requests these tests send are answered before any AWS call, or not at all).
- `emulator`: the Marketplace emulator in this process.
- `console`: the local console in this process, its emulator and AWS services a closed port.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from local.console import serve as console_server
from local.gateway import GatewaySpec
from local.http_server import REQUEST_TIMEOUT_SECONDS
from local.marketplace_emulator import EmulatorServer
from local.run import child_environment, free_port, local_aws_environment
from stacks.app_builder import build_app
from stacks.page_config import page_config
from tests.infrastructure.conftest import ACCOUNT, config_with, listing, new_app

PROJECT_ROOT = Path(__file__).resolve().parents[3]
# Long enough for any answer the servers owe, including a 408 after their own socket timeout.
ANSWER_SECONDS = REQUEST_TIMEOUT_SECONDS + 6
STARTUP_SECONDS = 30


@dataclass(frozen=True)
class Server:
    name: str
    port: int
    normal_request: bytes  # a request the server answers with 2xx or 3xx when healthy
    post_path: str  # a route that reads a request body
    pid: int | None = None  # the server's own process, when it runs in one


def closed_port() -> int:
    """A port nothing listens on (connections to it are refused at once)."""
    return free_port()


def exchange(port: int, data: bytes, *, half_close: bool = False) -> bytes:
    """Send raw bytes and read until the server closes or its answer is complete; '' if it closed silently.

    Raises socket.timeout if nothing arrives within ANSWER_SECONDS: the server hung.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=ANSWER_SECONDS) as connection:
        connection.sendall(data)
        if half_close:
            connection.shutdown(socket.SHUT_WR)
        received = b""
        while True:
            chunk = connection.recv(65536)
            if not chunk:
                return received
            received += chunk
            head, separator, body = received.partition(b"\r\n\r\n")
            if separator:
                length = next(
                    (
                        int(line.split(b":", 1)[1])
                        for line in head.split(b"\r\n")[1:]
                        if line.lower().startswith(b"content-length:")
                    ),
                    None,
                )
                if length is not None and len(body) >= length:
                    return received


def post_form(port: int, path: str, form: bytes) -> bytes:
    """A browser's form post to `path` (application/x-www-form-urlencoded), and the raw answer."""
    return exchange(
        port,
        f"POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n".encode()
        + b"Content-Type: application/x-www-form-urlencoded\r\n"
        + f"Content-Length: {len(form)}\r\n\r\n".encode()
        + form,
    )


def status_of(answer: bytes) -> int:
    """The status code of an HTTP/1.x answer (the test fails on anything else)."""
    line = answer.split(b"\r\n", 1)[0]
    assert line.startswith(b"HTTP/1."), f"no HTTP status line in {answer[:200]!r}"
    return int(line.split()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes], log_file: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the gateway stopped at start:\n{log_file.read_text()[-3000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"the gateway did not listen on {port} within {STARTUP_SECONDS}s")


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("gateway")
    config = config_with(listing("onboard", "PROD_ONBOARD"))
    app = new_app()
    _, (stack,) = build_app(config, account=ACCOUNT, app=app)
    template_file = Path(app.synth().directory) / f"{stack.stack_name}.template.json"
    onboard = config.listing_by_path("onboard")
    assert onboard is not None
    dead = f"http://127.0.0.1:{closed_port()}"
    port = free_port()
    spec = GatewaySpec(
        listing_path="onboard",
        port=port,
        template=template_file,
        site_root=PROJECT_ROOT / "site",
        page_config=page_config(onboard),
        aws_environment=local_aws_environment("us-east-1", dead, dead),
        schedule_seconds=3600,
    )
    spec_file = folder / "spec.json"
    spec.write(spec_file)
    log_file = folder / "gateway.log"
    log = log_file.open("wb")
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "local.gateway", "--spec", str(spec_file)],
        cwd=PROJECT_ROOT,
        env=child_environment({}),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, process, log_file)
        # A handler's first call imports it (a cold start, seconds on a busy machine): done here, so that the
        # tests' socket timeouts measure only how the gateway answers.
        with socket.create_connection(("127.0.0.1", port), timeout=STARTUP_SECONDS) as warm:
            warm.sendall(b"POST /api/register HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}")
            assert warm.recv(12).startswith(b"HTTP/1.")
        yield Server(
            "gateway", port, b"GET /config.json HTTP/1.1\r\nHost: x\r\n\r\n", "/api/register", process.pid
        )
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


@pytest.fixture(scope="session")
def emulator() -> Iterator[Server]:
    with EmulatorServer() as server:
        port = int(server.url.rsplit(":", 1)[1])
        yield Server(
            "emulator",
            port,
            b"GET /_emulator/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            "/_emulator/products",
        )


@pytest.fixture(scope="session")
def console() -> Iterator[Server]:
    dead = f"http://127.0.0.1:{closed_port()}"
    endpoints = {"emulator": {"url": dead}, "aws": {"url": dead}, "listings": {}}
    port = free_port()
    server = console_server(port, endpoints, local_aws_environment("us-east-1", dead, dead))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        # The dashboard of no listing: it needs neither the emulator nor the AWS services.
        yield Server("console", port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "/event")
    finally:
        server.shutdown()
        server.server_close()
