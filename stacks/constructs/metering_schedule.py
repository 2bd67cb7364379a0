"""The hourly metering job: a function on an EventBridge schedule, allowed exactly what the job does."""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import (
    Duration,
    aws_cloudwatch as cloudwatch,
    aws_lambda,
)
from constructs import Construct

from stacks.constructs.dead_letters import dead_letter_queue
from stacks.constructs.listing_function import METRICS_NAMESPACE, ListingFunction
from stacks.constructs.schedule import run_on_schedule
from stacks.constructs.tables import (
    PENDING_USAGE_INDEX,
    SUBSCRIBER_BY_STATUS_INDEX,
    ListingTables,
)
from stacks.naming import ListingNames

JOB_TIMEOUT_SECONDS = 300
# Lambda gives a function one full vCPU at 1,769 MB. The job's workers spend most of their time waiting on
# AWS, but building, signing and parsing a transaction and a BatchMeterUsage call per 25 records is CPU:
# at the default 512 MB (about 0.3 vCPU) that CPU, not the network, would bound a large hour.
JOB_MEMORY_MB = 1769
# A run not started within this long is superseded by the next hour's run.
RUN_MAX_AGE = Duration.minutes(50)


def allow_metering(function: ListingFunction, tables: ListingTables) -> None:
    """What sending usage needs (the hourly job, and the lifecycle when a customer leaves): read pending
    usage, seal and settle it, read who is billable, and call BatchMeterUsage."""
    usage, subscribers = tables.usage_records, tables.subscribers
    function.allow(["dynamodb:Query"], [f"{usage.table_arn}/index/{PENDING_USAGE_INDEX}", usage.table_arn])
    # (A batch is sealed, and its answers stored, in one TransactWriteItems: IAM checks it as UpdateItem;
    # records changed meanwhile are read again with BatchGetItem.)
    function.allow(["dynamodb:UpdateItem", "dynamodb:GetItem", "dynamodb:BatchGetItem"], [usage.table_arn])
    function.allow(["dynamodb:Query"], [f"{subscribers.table_arn}/index/{SUBSCRIBER_BY_STATUS_INDEX}"])
    # Zero records go only to registered buyers: one BatchGetItem per 100 active licenses an hour.
    function.allow(["dynamodb:BatchGetItem"], [subscribers.table_arn])
    function.allow(["aws-marketplace:BatchMeterUsage"], ["*"])


class MeteringSchedule(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        names: ListingNames,
        code: aws_lambda.Code,
        environment: Mapping[str, str],
        tables: ListingTables,
        schedule: str,
        retain: bool,
        concurrency: int,
    ) -> None:
        super().__init__(scope, construct_id)
        # EventBridge invokes the job asynchronously: Lambda retries a failed run twice, then keeps its
        # event here (an alarm watches it). The next hour's run still sends everything that run would have.
        self.failed_runs = dead_letter_queue(self, "FailedRuns", of="the metering job's asynchronous runs")
        self.job = ListingFunction(
            self,
            "Job",
            names=names,
            role_name="MeteringJob",
            code=code,
            handler="handlers.metering_job.handler",
            description=f"Sends {names.path}'s usage to AWS Marketplace every hour",
            environment={**environment, "METERING_CONCURRENCY": str(concurrency)},
            retain=retain,
            timeout_seconds=JOB_TIMEOUT_SECONDS,
            memory_size=JOB_MEMORY_MB,
            async_failures=self.failed_runs,
            async_max_age=RUN_MAX_AGE,
            # One run at a time: a second invocation while a run is under way is throttled, and Lambda
            # retries a throttled asynchronous event until RUN_MAX_AGE, then it lands in failed_runs.
            # Overlapping runs would be safe (sealed records) but send nothing more.
            reserved_concurrency=1,
        )
        allow_metering(self.job, tables)
        # A run EventBridge could not deliver lands here (an alarm watches it); the next hour's run still
        # sends everything that run would have sent.
        self.rule, self.dead_letters = run_on_schedule(
            self,
            "Hourly",
            function=self.job.function,
            schedule=schedule,
            description=f"Runs {names.function('MeteringJob')} ({schedule})",
            max_age=RUN_MAX_AGE,
            dead_letters_of="the hourly schedule's target",
        )
        self.final_failures_alarm = self._failures_alarm(names)

    def _failures_alarm(self, names: ListingNames) -> cloudwatch.Alarm:
        """Usage that could not be billed (not subscribed, duplicate, too old) needs a person's look."""
        return cloudwatch.Alarm(
            self,
            "FinalFailures",
            alarm_name=f"{names.stack}-metering-final-failures",
            alarm_description="Usage AWS Marketplace will not bill; see failureReason in the metering table",
            metric=cloudwatch.Metric(
                namespace=METRICS_NAMESPACE,
                metric_name="MeteringFinalFailures",
                dimensions_map={"service": names.stack},
                statistic="Sum",
                period=Duration.hours(1),
            ),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
