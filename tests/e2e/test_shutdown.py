"""Stopping local mode: runs after the other end-to-end tests (pytest runs modules in name order), because
it stops the local mode they share."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.e2e.conftest import ENDPOINTS

pytestmark = pytest.mark.e2e


def test_sigterm_stops_everything_it_started(local_mode: dict[str, Any]) -> None:
    process: subprocess.Popen[bytes] = local_mode["_process"]
    ports = [int(urlsplit(item["siteUrl"]).port or 0) for item in local_mode["listings"].values()]
    ports += [int(urlsplit(local_mode[name]["url"]).port or 0) for name in ("emulator", "aws")]
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    for port in ports:
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still answers"
    pgrep = shutil.which("pgrep") or "/usr/bin/pgrep"
    leftover = subprocess.run(  # noqa: S603
        [pgrep, "-g", str(process.pid)], capture_output=True, text=True, check=False
    )
    assert leftover.stdout.strip() == "", f"processes left behind: {leftover.stdout}"
    assert not ENDPOINTS.exists()
