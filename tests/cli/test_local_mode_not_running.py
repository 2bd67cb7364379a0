"""`--local` commands when local mode is not running, though a killed one left .local/endpoints.json behind:
a plain message that says how to start it, and a non-zero exit, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from local.run import free_port
from operations import cli, record_usage, target

USAGE = ["--listing", "ai-skills", "--customer", "123456789012", "--dimension", "learners", "--quantity", "1"]


def left_behind(folder: Path, pid: int) -> Path:
    """The endpoints.json of a local mode that was killed: its services' ports answer no more."""
    dead = f"http://127.0.0.1:{free_port()}"
    listing = {
        "productCode": "x",
        "siteUrl": dead + "/",
        "tables": {"subscribers": "codio-marketplace-subscribers-ai-skills", "metering": "m"},
    }
    file = folder / "endpoints.json"
    file.write_text(
        json.dumps(
            {"pid": pid, "emulator": {"url": dead}, "aws": {"url": dead}, "listings": {"ai-skills": listing}}
        )
    )
    return file


def dead_pid() -> int:
    process = subprocess.Popen(["true"])  # noqa: S607 - a process that has ended
    process.wait()
    return process.pid


@pytest.fixture
def no_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key, raising=False)


def test_record_usage_recognises_the_endpoints_of_a_killed_local_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], no_credentials: None
) -> None:
    monkeypatch.setattr(target, "ENDPOINTS", left_behind(tmp_path, dead_pid()))
    assert record_usage.main([*USAGE, "--local"]) == 1
    error = capsys.readouterr().err
    assert "local mode is not running: start it with ./deploy-marketplace.sh --local" in error
    assert "Traceback" not in error


def test_record_usage_says_so_when_local_mode_stopped_answering(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], no_credentials: None
) -> None:
    # The file names a live process (this one) whose services do not answer: the calls themselves fail.
    monkeypatch.setattr(target, "ENDPOINTS", left_behind(tmp_path, os.getpid()))
    assert record_usage.main([*USAGE, "--local"]) == 1
    error = capsys.readouterr().err
    assert "local mode is not running: start it with ./deploy-marketplace.sh --local" in error
    assert "nothing answers at http://127.0.0.1:" in error


def test_status_recognises_the_endpoints_of_a_killed_local_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], no_credentials: None
) -> None:
    monkeypatch.setattr(target, "ENDPOINTS", left_behind(tmp_path, dead_pid()))
    assert cli.main(["--status", "--local", "--listing", "ai-skills"]) == 1
    assert "local mode is not running" in capsys.readouterr().err
