"""`python -m local.aws_server --port P [--journal FILE]`: moto's server, keeping DynamoDB across restarts.

Local mode's data lives in DynamoDB: subscribers, registrations, usage and what the metering job did with it.
With `--journal`, every DynamoDB write that succeeds is appended to the file before its answer is sent, one
JSON line each, and a restart replays the file before it serves: a caller that got an answer finds its write
again after any stop, SIGKILL included (the line is in the operating system's hands before the answer
leaves; a power cut may lose the last ones). Writes run one at a time, so the file holds them in the order
they took effect, and a replay, in the same order, ends in the same state (a conditional write that
succeeded succeeds again; one that failed is not in the file). Reads and the other services are not
written down: queues, buses, rules and topics are created again from the templates at each start.

Why not moto's recorder (MOTO_ENABLE_RECORDING): it writes each request down before it runs, reads and
failed writes included, in the order requests arrive rather than the order they took effect; local mode's
queue polling alone adds a line a second per queue, and a replayed SQS delete names a receipt handle the
new server never issued, so messages handled long ago come back.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import re
import sys
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

DYNAMODB_TARGET = "DynamoDB_20120810."
# The DynamoDB operations that change a table or its items (PartiQL's ExecuteStatement may too).
WRITES = frozenset(
    {
        "CreateTable",
        "DeleteTable",
        "UpdateTable",
        "UpdateTimeToLive",
        "PutItem",
        "UpdateItem",
        "DeleteItem",
        "BatchWriteItem",
        "TransactWriteItems",
        "ExecuteStatement",
        "BatchExecuteStatement",
        "ExecuteTransaction",
    }
)
# What a replay needs of a request: its service and region are read from these. The Authorization header is
# kept without its signature (its credential scope names the region, its key id the account).
KEPT_HEADERS = ("HTTP_X_AMZ_TARGET", "CONTENT_TYPE", "HTTP_AUTHORIZATION", "HTTP_HOST", "HTTP_X_AMZ_DATE")
_SIGNATURE = re.compile(r"Signature=[0-9a-fA-F]+")

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class Journal:
    """WSGI middleware: successful DynamoDB writes, one at a time, each written down before it is answered."""

    def __init__(self, app: WsgiApp, path: Path) -> None:
        self.app = app
        self.path = path
        self._lock = threading.Lock()
        self._file: io.TextIOWrapper | None = None

    def replay(self) -> int:
        """Applies the journal's writes to the (empty) server; returns how many there were.

        A last line without its end was being written when the process died (its write was never
        answered): it is cut off, so the next write starts a line of its own."""
        if not self.path.exists():
            return 0
        count = complete = 0
        with self.path.open("rb") as lines:
            for number, line in enumerate(lines, 1):
                if not line.endswith(b"\n"):
                    break
                entry = json.loads(line)
                status = _call(self.app, _environ(entry))
                if not status.startswith("2"):
                    raise SystemExit(
                        f"{self.path}, line {number}: replaying {entry['target']} gave {status}; "
                        "start with --fresh to start empty"
                    )
                count += 1
                complete += len(line)
        if complete != self.path.stat().st_size:
            with self.path.open("r+b") as file:
                file.truncate(complete)
        return count

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        target = str(environ.get("HTTP_X_AMZ_TARGET", ""))
        if not target.startswith(DYNAMODB_TARGET) or target.removeprefix(DYNAMODB_TARGET) not in WRITES:
            return self.app(environ, start_response)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        answer: dict[str, Any] = {}

        def keep(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], Any]:
            answer["status"], answer["headers"] = status, headers
            return lambda _data: None

        with self._lock:
            chunks = list(self.app(environ, keep))
            if str(answer.get("status", "")).startswith("2"):
                self._append(environ, target, body)
        start_response(answer["status"], answer["headers"])
        return chunks

    def _append(self, environ: dict[str, Any], target: str, body: bytes) -> None:
        entry = {
            "target": target,
            "path": environ.get("PATH_INFO", "/"),
            "headers": {
                key: _SIGNATURE.sub("Signature=-", str(environ[key]))
                if key == "HTTP_AUTHORIZATION"
                else environ[key]
                for key in KEPT_HEADERS
                if key in environ
            },
            "body": base64.b64encode(body).decode("ascii"),
        }
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a", encoding="utf-8")
        self._file.write(json.dumps(entry, separators=(",", ":")) + "\n")
        self._file.flush()  # in the operating system's hands before the answer is sent


def _environ(entry: dict[str, Any]) -> dict[str, Any]:
    body = base64.b64decode(entry["body"])
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": entry["path"],
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        **entry["headers"],
    }
    return environ


def _call(app: WsgiApp, environ: dict[str, Any]) -> str:
    answer: dict[str, str] = {}

    def keep(status: str, _headers: list[tuple[str, str]], _exc_info: Any = None) -> Callable[[bytes], Any]:
        answer["status"] = status
        return lambda _data: None

    for _chunk in app(environ, keep):
        pass
    return answer.get("status", "")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m local.aws_server", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--journal", type=Path, help="keep DynamoDB's writes here, and replay them at start")
    args = parser.parse_args()
    os.environ.setdefault("MOTO_PORT", str(args.port))

    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import run_simple

    app: WsgiApp = DomainDispatcherApplication(create_backend_app)
    if args.journal is not None:
        journal = Journal(app, args.journal)
        replayed = journal.replay()
        print(f"replayed {replayed} DynamoDB write(s) from {args.journal}", flush=True)
        app = journal
    run_simple(args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
