"""The committed JSON Schema is the one the model generates, so editors check what the CLI checks."""

from __future__ import annotations

import json

from stacks.config import SCHEMA_PATH, json_schema


def test_committed_schema_matches_the_model() -> None:
    committed = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    assert committed == json_schema(), "stale schema: run `.venv/bin/python -m stacks.config`"
