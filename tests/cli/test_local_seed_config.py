"""The seed's own config, pasted into a file, runs `--local` with no edits: buyers subscribe and register,
and usage is refused with a message that says how to declare dimensions."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from operations.record_usage import RecordingError, record_usage
from tests.e2e.conftest import ENDPOINTS, PROJECT_ROOT, consecutive_free_ports, register_buyer
from tests.support.seed_config import SEED_CONFIG

# Shares .local/ with the end-to-end tests: run-tests.sh runs it one test at a time, before them.
pytestmark = pytest.mark.checkout


def test_the_seeds_config_runs_locally_as_written(tmp_path: Path) -> None:
    config = tmp_path / "marketplace-config.json"
    config.write_text(SEED_CONFIG)
    ENDPOINTS.unlink(missing_ok=True)
    port = consecutive_free_ports(3)
    process = subprocess.Popen(  # noqa: S603
        [
            str(PROJECT_ROOT / "deploy-marketplace.sh"),
            "--local",
            "--config",
            str(config),
            "--port",
            str(port),
        ],
        cwd=PROJECT_ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not ENDPOINTS.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                output = process.stdout.read().decode() if process.stdout else ""
                pytest.fail(f"local mode did not start with the seed's config:\n{output[-4000:]}")
            time.sleep(0.5)
        endpoints = json.loads(ENDPOINTS.read_text())
        assert sorted(endpoints["listings"]) == ["ai-skills", "data-analytics"]
        minted = register_buyer(endpoints, "ai-skills")
        with pytest.raises(RecordingError) as refused:
            record_usage(
                "ai-skills", minted["customerAWSAccountId"], "users", 1, config_path=config, local=True
            )
        assert "declares no dimensions" in str(refused.value)
        assert "marketplaceListings.ai-skills.dimensions" in str(refused.value)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
    output = process.stdout.read().decode() if process.stdout else ""
    assert output.count("warning: marketplaceListings.") == 2, output[-3000:]
