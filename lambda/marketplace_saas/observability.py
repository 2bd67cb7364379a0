"""Module-level Powertools objects shared by the handlers, and helpers that keep personal data out of logs.

Logs and metrics only. Traces come from the platform, not from an SDK in the function: the functions run
with Lambda's active tracing and the API stage with API Gateway's, so every request is traced end to end in
X-Ray (gateway, Lambda service, function) with nothing imported here. The X-Ray SDK (and Powertools' Tracer,
which is built on it) is deliberately not used: it cost a cold start about 150 ms of imports, and AWS ended
its development (maintenance from February 2026, end of support February 2027). A seller who wants a
segment per AWS call adds OpenTelemetry from outside the code (README, "Traces").
"""

from __future__ import annotations

import warnings

from aws_lambda_powertools import Logger, Metrics

# Reads (the page asking for its state) publish no business metric; that is expected, not worth a warning.
warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)

logger = Logger()
metrics = Metrics()


def mask_email(email: str) -> str:
    """`jane.doe@example.com` → `j***@example.com`: enough to correlate, not enough to contact."""
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}" if domain else "***"
