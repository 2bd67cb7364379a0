"""Settings every test needs before any handler module is imported (Lambda sets them before import too)."""

from __future__ import annotations

import os

os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "marketplace-listing-tests")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "MarketplaceListingsTests")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
