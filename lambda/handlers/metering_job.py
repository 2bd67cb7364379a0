"""The hourly metering job (EventBridge schedule): sends completed hours' usage with BatchMeterUsage."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from marketplace_saas.observability import logger, metrics
from marketplace_saas.wiring import lifecycle, metering_job


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # The schedule sends {}. (A leaving customer's usage is flushed by the lifecycle function itself.)
    # Stops taking new batches in time to finish those it sealed; the next run continues from there.
    report = metering_job().run(time_left=lambda: context.get_remaining_time_in_millis() / 1000)
    # Subscriptions whose final hour of usage has passed (and was sent above) are now cancelled.
    closed = lifecycle().close_ended()
    metrics.add_metric(name="UsageRecordsMetered", unit=MetricUnit.Count, value=report.metered)
    metrics.add_metric(name="UsageRecordsSent", unit=MetricUnit.Count, value=report.sent)
    metrics.add_metric(name="MeteringBatches", unit=MetricUnit.Count, value=report.batches)
    metrics.add_metric(name="MeteringThrottles", unit=MetricUnit.Count, value=report.throttles)
    metrics.add_metric(name="MeteringRunSeconds", unit=MetricUnit.Seconds, value=round(report.seconds, 3))
    metrics.add_metric(name="MeteringStoppedEarly", unit=MetricUnit.Count, value=int(report.stopped_early))
    metrics.add_metric(name="UsageRecordsStillPending", unit=MetricUnit.Count, value=report.still_pending)
    metrics.add_metric(name="MeteringFinalFailures", unit=MetricUnit.Count, value=sum(report.failed.values()))
    metrics.add_metric(name="PendingUsageRecords", unit=MetricUnit.Count, value=report.pending_after)
    metrics.add_metric(name="ActiveSubscribers", unit=MetricUnit.Count, value=report.active_subscribers)
    for dimension, quantity in sorted(report.billed_by_dimension.items()):
        # One metric per listing dimension (a fixed set of at most 24), for the dashboard.
        metrics.add_metric(name=f"UsageBilled_{dimension}", unit=MetricUnit.Count, value=float(quantity))
    if report.oldest_pending_hour:
        oldest = datetime.fromisoformat(report.oldest_pending_hour.replace("Z", "+00:00"))
        age_hours = (datetime.now(UTC) - oldest).total_seconds() / 3600
        metrics.add_metric(
            name="OldestPendingUsageAgeHours", unit=MetricUnit.Count, value=round(age_hours, 2)
        )
    logger.info("metering run finished", extra={**report.view(), "subscriptionsClosed": len(closed)})
    return {**report.view(), "subscriptionsClosed": len(closed)}
