"""The hourly metering job: a function on an EventBridge schedule, allowed exactly what the job does."""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Duration, aws_events as events, aws_events_targets as targets, aws_lambda, aws_sqs as sqs
from constructs import Construct

from stacks.constructs.listing_function import ListingFunction
from stacks.constructs.tables import (
    PENDING_USAGE_INDEX,
    SUBSCRIBER_BY_STATUS_INDEX,
    ListingTables,
)
from stacks.nag import acknowledge
from stacks.naming import ListingNames

# Five minutes past every hour: the hour that just ended is sent at once, well inside Marketplace's 6 hours.
SCHEDULE = events.Schedule.cron(minute="5")
JOB_TIMEOUT_SECONDS = 300


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
        retain: bool,
    ) -> None:
        super().__init__(scope, construct_id)
        self.job = ListingFunction(
            self,
            "Job",
            names=names,
            role_name="MeteringJob",
            code=code,
            handler="handlers.metering_job.handler",
            description=f"Sends {names.path}'s usage to AWS Marketplace every hour",
            environment=environment,
            retain=retain,
            timeout_seconds=JOB_TIMEOUT_SECONDS,
        )
        # One run at a time is the normal case; overlapping runs are safe (sealed records) but wasteful.
        usage, subscribers = tables.usage_records, tables.subscribers
        self.job.allow(
            ["dynamodb:Query"], [f"{usage.table_arn}/index/{PENDING_USAGE_INDEX}", usage.table_arn]
        )
        self.job.allow(["dynamodb:UpdateItem", "dynamodb:GetItem"], [usage.table_arn])
        self.job.allow(["dynamodb:Query"], [f"{subscribers.table_arn}/index/{SUBSCRIBER_BY_STATUS_INDEX}"])
        self.job.allow(["aws-marketplace:BatchMeterUsage"], ["*"])
        # A run EventBridge could not deliver lands here (an alarm watches it); the next hour's run still
        # sends everything that run would have sent.
        self.dead_letters = sqs.Queue(
            self,
            "MissedRuns",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        acknowledge(
            self.dead_letters,
            dict.fromkeys(
                ("AwsSolutions-SQS3", "Serverless-SQSRedrivePolicy"),
                "This queue is itself the dead-letter queue of the hourly schedule's target.",
            ),
        )
        self.rule = events.Rule(
            self,
            "Hourly",
            description=f"Runs {names.function('MeteringJob')} five minutes past every hour",
            schedule=SCHEDULE,
            targets=[
                targets.LambdaFunction(
                    self.job.function,
                    retry_attempts=2,
                    max_event_age=Duration.minutes(50),
                    dead_letter_queue=self.dead_letters,
                )
            ],
        )
