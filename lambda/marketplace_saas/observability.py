"""Module-level Powertools objects shared by the handlers, and helpers that keep personal data out of logs."""

from __future__ import annotations

import warnings

from aws_lambda_powertools import Logger, Metrics, Tracer

# Reads (the page asking for its state) publish no business metric; that is expected, not worth a warning.
warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)

logger = Logger()
tracer = Tracer()
metrics = Metrics()


def mask_email(email: str) -> str:
    """`jane.doe@example.com` → `j***@example.com`: enough to correlate, not enough to contact."""
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}" if domain else "***"
