"""Reconciliation (daily schedule, or `./deploy-marketplace.sh --reconcile`): each license against AWS
Marketplace's record of the listing's agreements; differences are repaired through the lifecycle.

The schedule sends EventBridge's scheduled event (an incremental run). `--reconcile` invokes the function
with `{"full": true|false, "dryRun": true|false}`.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from marketplace_saas.observability import logger, metrics
from marketplace_saas.wiring import reconciler

OPTIONS = ("full", "dryRun")


class BadRequest(ValueError):
    """The invocation's payload is not what --reconcile sends."""


def options(event: dict[str, Any]) -> tuple[bool, bool]:
    """(full, dry_run) from the payload; a scheduled event is an incremental run that repairs."""
    if not isinstance(event, dict):
        raise BadRequest("the payload must be a JSON object")
    if event.get("source") == "aws.events":
        return False, False
    unknown = sorted(set(event) - set(OPTIONS))
    if unknown:
        raise BadRequest(f"unknown option(s) {', '.join(unknown)}: expected {', '.join(OPTIONS)}")
    for name in OPTIONS:
        if not isinstance(event.get(name, False), bool):
            raise BadRequest(f"{name}: true or false")
    return bool(event.get("full", False)), bool(event.get("dryRun", False))


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        full, dry_run = options(event)
    except BadRequest as error:
        logger.warning("reconciliation refused", extra={"reason": str(error)})
        return {"error": str(error)}
    report = reconciler().run(full=full, dry_run=dry_run)
    for difference in report.differences:
        logger.info("reconciliation difference", extra=difference.view())
    metrics.add_metric(name="ReconcileDifferences", unit=MetricUnit.Count, value=len(report.differences))
    metrics.add_metric(name="ReconcileRepaired", unit=MetricUnit.Count, value=report.repaired)
    metrics.add_metric(name="ReconcileUnrepairable", unit=MetricUnit.Count, value=report.unrepairable)
    logger.info("reconciliation finished", extra=report.summary())
    return report.view()
