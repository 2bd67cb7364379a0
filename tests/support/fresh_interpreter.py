"""Runs a probe script in a new Python process, as a function's cold start would run the handler's import.

The process sees the project and the functions' packages, and none of the function's environment (no
`AWS_*`, no `POWERTOOLS_*`): what a handler reads from it must wait for the first request.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def run_probe(script: str) -> dict[str, Any]:
    """Runs `script`, which must print one JSON object on its last line, and returns that object."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "POWERTOOLS_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "lambda")])
    result = subprocess.run(  # noqa: S603 - our own interpreter, our own script
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return report
