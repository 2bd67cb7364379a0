"""What every local server (gateway, Marketplace emulator, console) shares so that no request goes unanswered.

`http.server` as it comes listens with a backlog of 5 (a burst of connections is refused), waits forever for
a request that never finishes arriving, trusts `Content-Length`, and drops the connection without an answer
when a handler raises. `LocalHTTPServer` and `LocalRequestHandler` give every request an HTTP answer within a
bounded time instead:

- a backlog of `BACKLOG` connections;
- a socket timeout of `REQUEST_TIMEOUT_SECONDS` on every read and write: an idle or half-sent request line
  closes the connection, headers or a body that stop arriving get 408;
- a request line longer than `MAX_REQUEST_LINE_BYTES` gets 414 (CloudFront's limit on a URL), one with a
  control character (a null byte, say) 400;
- HTTP/0.9 (a request line without a version, whose answer has no status line) gets 400;
- `read_body()` accepts only a `Content-Length` of ASCII digits within the server's limit (400 or 413
  otherwise, with the connection closed since the body is left unread);
- a handler that raises all the same answers 500 (when it had not started its answer), with the traceback
  on stderr.
"""

from __future__ import annotations

import re
import sys
import traceback
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import NamedTuple

BACKLOG = 1024
REQUEST_TIMEOUT_SECONDS = 4.0
# CloudFront refuses a URL longer than 8,192 bytes; the request line adds the method and the version.
MAX_REQUEST_LINE_BYTES = 8192 + len("OPTIONS  HTTP/1.1\r\n")
_DIGITS = re.compile(r"[0-9]+")
_CONTROL = re.compile(rb"[\x00-\x1f\x7f]")


class LocalHTTPServer(ThreadingHTTPServer):
    """A thread per connection, on a listening socket whose backlog holds a burst of connections."""

    request_queue_size = BACKLOG
    daemon_threads = True


class BodyRefused(Exception):
    """The request body cannot be read; `status` and `message` say why (the connection is then closed)."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class RequestTarget(NamedTuple):
    path: str
    query: str


def split_target(target: str) -> RequestTarget:
    """A request target's path and query: `/a/b?c=1` → (`/a/b`, `c=1`).

    Not `urlsplit`, which reads `//x/y` as a host and a path (and raises on `//[x`): a request line's target
    is a path, as CloudFront and API Gateway take it.
    """
    path, _, query = target.partition("#")[0].partition("?")
    return RequestTarget(path, query)


def request_path(target: str) -> str:
    return split_target(target).path


class LocalRequestHandler(BaseHTTPRequestHandler):
    timeout = REQUEST_TIMEOUT_SECONDS
    # The version an error answer speaks before the request's own is known: http.server's default, HTTP/0.9,
    # answers a request line it cannot read with no status line at all.
    default_request_version = "HTTP/1.0"
    raw_requestline: bytes

    def handle_one_request(self) -> None:
        self._answer_started = False
        try:
            super().handle_one_request()
        except (ConnectionError, TimeoutError):
            self.close_connection = True  # the client went away, or stopped reading the answer
        except Exception:
            traceback.print_exc(file=sys.stderr)
            self.close_connection = True
            if not self._answer_started:
                self.send_error(HTTPStatus.INTERNAL_SERVER_ERROR, "The local server failed; see its log")

    def send_response_only(self, code: int, message: str | None = None) -> None:
        self._answer_started = True
        super().send_response_only(code, message)

    def parse_request(self) -> bool:
        line = self.raw_requestline
        if len(line) > MAX_REQUEST_LINE_BYTES:
            self.requestline, self.request_version, self.command = "", "", ""
            self.close_connection = True
            self.send_error(HTTPStatus.REQUEST_URI_TOO_LONG, "The request line is too long")
            return False
        if _CONTROL.search(line.rstrip(b"\r\n")):
            self.requestline, self.request_version, self.command = "", "", ""
            self.close_connection = True
            self.send_error(HTTPStatus.BAD_REQUEST, "The request line holds a control character")
            return False
        if len(line.split()) == 2:
            # HTTP/0.9 (no version), whose answer has no status line: nothing in front of these servers
            # speaks it.
            self.requestline, self.request_version, self.command = "", "", ""
            self.close_connection = True
            self.send_error(HTTPStatus.BAD_REQUEST, "HTTP/0.9 is not supported")
            return False
        try:
            return super().parse_request()
        except TimeoutError:
            self.close_connection = True
            self.send_error(HTTPStatus.REQUEST_TIMEOUT, "The request headers did not arrive in time")
            return False

    def read_body(self, limit: int) -> bytes:
        """The request body (`limit` bytes at most), or BodyRefused saying why it cannot be read."""
        values = self.headers.get_all("Content-Length") or []
        if not values:
            return b""
        keep_alive = not self.close_connection
        self.close_connection = True  # until the body has been read in full
        if len(set(values)) != 1 or not _DIGITS.fullmatch(values[0].strip()):
            raise BodyRefused(HTTPStatus.BAD_REQUEST, "Content-Length is not a number of bytes")
        length = int(values[0])
        if length > limit:
            raise BodyRefused(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"The body is over {limit} bytes")
        try:
            body = self.rfile.read(length)
        except TimeoutError:
            raise BodyRefused(HTTPStatus.REQUEST_TIMEOUT, "The request body did not arrive in time") from None
        if len(body) != length:
            raise BodyRefused(HTTPStatus.BAD_REQUEST, "The body is shorter than its Content-Length")
        self.close_connection = not keep_alive
        return body
