"""A listing's alarms and dashboard: is it healthy, and how is it selling?

Every alarm is named `<stack>-<signal>` and notifies the listing's topic (e-mailed to the seller when the
config names an address) when it fires and when it recovers. Thresholds are deliberately low: a listing's
traffic is small, so one server error or one dead letter already deserves a look.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from aws_cdk import (
    Duration,
    aws_apigateway as apigateway,
    aws_cloudwatch as cloudwatch,
    aws_cloudwatch_actions as actions,
    aws_lambda,
    aws_sns as sns,
    aws_sqs as sqs,
)
from constructs import Construct

from stacks.constructs.listing_function import METRICS_NAMESPACE
from stacks.naming import ListingNames

FIVE_MINUTES = Duration.minutes(5)
# Buyers sent back to Marketplace within five minutes before anyone is told: a few are normal (an expired
# link opened twice), a run of them means the listing is broken for buyers.
ONBOARDING_FAILURES_THRESHOLD = 5
# The job runs hourly and sends the previous hour: older than two hours means it is not keeping up.
PENDING_USAGE_MAX_AGE_HOURS = 2
# Half of AWS's 24-hour window: the metering job is falling behind its backlog (or has stopped), and usage
# older than 24 hours is never billed.
METERING_BEHIND_HOURS = 12
# The metering job runs one at a time on purpose (reserved concurrency 1): a throttle is a run that found
# the previous one still going, and Lambda retries it.
THROTTLED = {
    "metering": "The metering job was throttled: a run started while the last one was still going (it runs "
    "one at a time); Lambda retries it, and a run that keeps failing lands in its failed-runs queue",
    "reconciliation": "A reconciliation was throttled: it runs one at a time, and another was under way "
    "(--reconcile while the schedule's run was going); run it again when that one has finished",
}


@dataclass(frozen=True)
class Signals:
    """What the listing's constructs give the monitoring."""

    functions: Mapping[str, aws_lambda.IFunction]  # short name → function
    api: apigateway.RestApi
    dead_letter_queues: Mapping[str, sqs.IQueue]  # short name → queue
    final_failures_alarm: cloudwatch.Alarm
    dimensions: Sequence[str]


class ListingMonitoring(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        names: ListingNames,
        signals: Signals,
        topic: sns.ITopic,
    ) -> None:
        super().__init__(scope, construct_id)
        self._names = names
        self._topic = topic
        self.alarms: list[cloudwatch.Alarm] = []

        onboarding = {
            "fulfillment-failures": self._metric("FulfillmentFailures"),
            "registration-failures": self._metric("RegistrationFailures"),
        }
        for signal, metric in onboarding.items():
            self._alarm(
                signal,
                metric,
                ONBOARDING_FAILURES_THRESHOLD,
                f"{ONBOARDING_FAILURES_THRESHOLD} or more buyers turned away in 5 minutes; "
                "see the function's log",
            )
        self._alarm(
            "seller-events-unsent",
            self._metric("SellerEventsUnsent"),
            1,
            "A subscriber.registered event could not be published; the buyer is in the subscribers table",
        )
        api_errors = signals.api.metric_server_error(period=FIVE_MINUTES, statistic="Sum")
        self._alarm("api-5xx", api_errors, 1, "The API answered with a server error (5xx)")
        for name, function in signals.functions.items():
            self._alarm(
                f"{name}-errors",
                function.metric_errors(period=FIVE_MINUTES, statistic="Sum"),
                1,
                f"The {name} function failed (an error or a timeout)",
            )
            self._alarm(
                f"{name}-throttles",
                function.metric_throttles(period=FIVE_MINUTES, statistic="Sum"),
                1,
                THROTTLED.get(name, f"The {name} function was throttled: raise the account's Lambda limit"),
            )
        self.alarms.append(signals.final_failures_alarm)
        self._notify(signals.final_failures_alarm)
        oldest = self._metric("OldestPendingUsageAgeHours", statistic="Maximum", period=Duration.hours(1))
        self._alarm(
            "usage-pending-too-long",
            oldest,
            PENDING_USAGE_MAX_AGE_HOURS,
            f"Usage has waited more than {PENDING_USAGE_MAX_AGE_HOURS} hours to be sent; AWS refuses it "
            "24 hours after its hour (last month's after 06:00 UTC on the 1st). Is the metering job running?",
            comparison=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        )
        self._alarm(
            "metering-behind",
            oldest,
            METERING_BEHIND_HOURS,
            f"The oldest pending usage hour is more than {METERING_BEHIND_HOURS} hours old, half of AWS's "
            "24-hour window: the metering job is not keeping up (see MeteringStoppedEarly and "
            "MeteringThrottles; raise meteringConcurrency) or not running",
            comparison=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        )
        self._alarm(
            "reconciliation-differences",
            self._metric("ReconcileDifferences", period=Duration.hours(1)),
            1,
            "Reconciliation found subscribers that differed from AWS Marketplace's record of their "
            "agreements: events went missing (is the lifecycle queue receiving them?). See the "
            "reconciliation function's log, or run ./deploy-marketplace.sh --reconcile --dry-run",
        )
        self._alarm(
            "reconciliation-unrepairable",
            self._metric("ReconcileUnrepairable", period=Duration.hours(1)),
            1,
            "Reconciliation found differences it could not repair (a license AWS does not know, or "
            "records that disagree on order): they need a person's look; see the function's log",
        )
        for name, queue in signals.dead_letter_queues.items():
            self._alarm(
                f"{name}-dead-letters",
                queue.metric_approximate_number_of_messages_visible(period=FIVE_MINUTES, statistic="Maximum"),
                1,
                f"A message is in the {name} dead-letter queue: it failed every retry and needs a look",
            )
        self.dashboard = self._dashboard(signals)

    def _metric(
        self, name: str, *, statistic: str = "Sum", period: Duration = FIVE_MINUTES
    ) -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace=METRICS_NAMESPACE,
            metric_name=name,
            dimensions_map={"service": self._names.stack},
            statistic=statistic,
            period=period,
        )

    def _alarm(
        self,
        signal: str,
        metric: cloudwatch.IMetric,
        threshold: float,
        description: str,
        *,
        comparison: cloudwatch.ComparisonOperator = (
            cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
        ),
    ) -> None:
        alarm = cloudwatch.Alarm(
            self,
            "".join(part.capitalize() for part in signal.split("-")),
            alarm_name=f"{self._names.stack}-{signal}",
            alarm_description=description,
            metric=metric,
            threshold=threshold,
            evaluation_periods=1,
            comparison_operator=comparison,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self._notify(alarm)
        self.alarms.append(alarm)

    def _notify(self, alarm: cloudwatch.Alarm) -> None:
        alarm.add_alarm_action(actions.SnsAction(self._topic))
        alarm.add_ok_action(actions.SnsAction(self._topic))

    def _dashboard(self, signals: Signals) -> cloudwatch.Dashboard:
        dashboard = cloudwatch.Dashboard(
            self, "Dashboard", dashboard_name=self._names.stack, default_interval=Duration.days(7)
        )
        hourly = Duration.hours(1)
        dashboard.add_widgets(
            cloudwatch.AlarmStatusWidget(title="Alarms", alarms=self.alarms, width=24, height=4),
        )
        usage_widgets = (
            [
                cloudwatch.GraphWidget(
                    title="Usage billed per dimension",
                    left=[self._metric(f"UsageBilled_{name}", period=hourly) for name in signals.dimensions],
                    width=8,
                )
            ]
            if signals.dimensions  # a listing that declares no dimensions bills no usage
            else []
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Buyers",
                left=[
                    self._metric("BuyersArrived", period=hourly),
                    self._metric("Registrations", period=hourly),
                    self._metric("FulfillmentFailures", period=hourly),
                    self._metric("RegistrationFailures", period=hourly),
                ],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Active subscribers",
                left=[self._metric("ActiveSubscribers", statistic="Maximum", period=hourly)],
                width=8,
            ),
            *usage_widgets,
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Metering",
                left=[
                    self._metric("UsageRecordsMetered", period=hourly),
                    self._metric("MeteringFinalFailures", period=hourly),
                    self._metric("PendingUsageRecords", statistic="Maximum", period=hourly),
                ],
                right=[self._metric("OldestPendingUsageAgeHours", statistic="Maximum", period=hourly)],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="API",
                left=[
                    signals.api.metric_count(period=FIVE_MINUTES),
                    signals.api.metric_client_error(period=FIVE_MINUTES),
                    signals.api.metric_server_error(period=FIVE_MINUTES),
                ],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Function errors and throttles",
                left=[
                    function.metric_errors(period=FIVE_MINUTES, label=f"{name} errors")
                    for name, function in signals.functions.items()
                ],
                right=[
                    function.metric_throttles(period=FIVE_MINUTES, label=f"{name} throttles")
                    for name, function in signals.functions.items()
                ],
                width=8,
            ),
        )
        return dashboard
