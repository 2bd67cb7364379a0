"""Settings every test needs before any handler module is imported (Lambda sets them before import too)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from stacks.config import ENVIRONMENT_VARIABLE

os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "marketplace-listing-tests")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "MarketplaceListingsTests")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")


@pytest.fixture(autouse=True)
def _no_environment_left_behind() -> Iterator[None]:
    """`cli.main(["--environment", ...])` sets MARKETPLACE_ENVIRONMENT for what it runs, as it must in its
    own process; in the tests' one process it would pick the environment of every later test."""
    before = os.environ.get(ENVIRONMENT_VARIABLE)
    yield
    if before is None:
        os.environ.pop(ENVIRONMENT_VARIABLE, None)
    else:
        os.environ[ENVIRONMENT_VARIABLE] = before
