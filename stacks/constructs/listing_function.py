"""One Lambda function of a listing, with its own role, its own log group and nothing it does not need."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from aws_cdk import (
    Annotations,
    Duration,
    RemovalPolicy,
    aws_iam as iam,
    aws_lambda,
    aws_lambda_destinations as destinations,
    aws_logs,
    aws_sqs as sqs,
)
from constructs import Construct

from stacks.bundling import RUNTIME
from stacks.nag import acknowledge
from stacks.naming import ListingNames

LOG_RETENTION = aws_logs.RetentionDays.THREE_MONTHS
# Where the functions publish their business metrics (Powertools, embedded metric format).
METRICS_NAMESPACE = "MarketplaceListings"
# With SnapStart, callers invoke this alias of the function's current published version.
SNAP_START_ALIAS = "live"


class ListingFunction(Construct):
    """A function named `<PrefixCamel>-<path>-<role>` logging to `/aws/lambda/<that name>`.

    The role starts empty except for writing to its own log group and X-Ray; callers grant the table
    actions and AWS APIs the function needs, one by one.

    With `snap_start`, Lambda snapshots each published version once initialized and resumes new execution
    environments from that snapshot. A snapshot exists only for a published version, so the function then
    gets its current version (republished whenever its code or configuration changes) and the alias `live`
    pointing at it; `invoke_target` is what callers must invoke (the alias, or else the function itself).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        names: ListingNames,
        role_name: str,
        code: aws_lambda.Code,
        handler: str,
        description: str,
        environment: Mapping[str, str],
        retain: bool,
        memory_size: int = 512,
        timeout_seconds: int = 15,
        async_failures: sqs.IQueue | None = None,
        async_max_age: Duration | None = None,
        reserved_concurrency: int | None = None,
        snap_start: bool = False,
    ) -> None:
        """Give `async_failures` to a function that something invokes asynchronously (EventBridge): an
        invocation that failed every retry (two), or found no free concurrency within `async_max_age`, is
        sent there with its error (an on-failure destination)."""
        super().__init__(scope, construct_id)
        self.log_group = aws_logs.LogGroup(
            self,
            "Logs",
            log_group_name=names.log_group(role_name),
            retention=LOG_RETENTION,
            removal_policy=RemovalPolicy.RETAIN if retain else RemovalPolicy.DESTROY,
        )
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"Runs {names.function(role_name)} and nothing else",
        )
        self.log_group.grant_write(self.role)
        self.function = aws_lambda.Function(
            self,
            "Function",
            function_name=names.function(role_name),
            description=description,
            runtime=RUNTIME,
            architecture=aws_lambda.Architecture.X86_64,
            code=code,
            handler=handler,
            memory_size=memory_size,
            timeout=Duration.seconds(timeout_seconds),
            role=self.role,
            reserved_concurrent_executions=reserved_concurrency,
            log_group=self.log_group,
            logging_format=aws_lambda.LoggingFormat.JSON,
            tracing=aws_lambda.Tracing.ACTIVE,
            snap_start=aws_lambda.SnapStartConf.ON_PUBLISHED_VERSIONS if snap_start else None,
            # Each published SnapStart version's snapshot is cached, and charged, while the version exists:
            # the version a deploy replaces is deleted with it.
            current_version_options=(
                aws_lambda.VersionOptions(removal_policy=RemovalPolicy.DESTROY) if snap_start else None
            ),
            environment={
                "POWERTOOLS_SERVICE_NAME": names.stack,
                "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
                "POWERTOOLS_LOG_LEVEL": "INFO",
                **environment,
            },
        )
        self.invoke_target: aws_lambda.IFunction = self.function
        if snap_start:
            self.invoke_target = self.function.add_alias(SNAP_START_ALIAS)
            Annotations.of(self.function).acknowledge_warning(
                "@aws-cdk/aws-lambda:snapStartRequirePublish",
                "The function's current version is published, and its alias is what callers invoke.",
            )
        acknowledge(
            self.role,
            {
                "AwsSolutions-IAM5[Resource::*]": (
                    "Only for actions that support no resource-level permissions: X-Ray's "
                    "PutTraceSegments/PutTelemetryRecords and the AWS Marketplace APIs (ResolveCustomer, "
                    "GetEntitlements, BatchMeterUsage; for reconciliation, the Agreement API's "
                    "SearchAgreements/GetAgreementEntitlements and the Catalog API's ListEntities/"
                    "DescribeEntity); every other statement names its ARN."
                )
            },
        )
        if async_failures is not None:
            self.function.configure_async_invoke(
                on_failure=destinations.SqsDestination(async_failures),
                retry_attempts=2,
                max_event_age=async_max_age,
            )
            acknowledge(
                self.function,
                {
                    "Serverless-LambdaDLQ": (
                        "Its asynchronous invocations that fail go to an on-failure destination (an SQS "
                        "queue with an alarm), whose record keeps the error with the event; a dead-letter "
                        "queue would keep the event alone."
                    )
                },
            )
        else:
            acknowledge(
                self.function,
                {
                    "Serverless-LambdaDLQ": (
                        "Invoked only synchronously: by API Gateway, or by an SQS event source mapping "
                        "(whose queue has its own dead-letter queue). A function's DLQ catches only "
                        "asynchronous invocations, and nothing invokes this one asynchronously."
                    )
                },
            )

    def allow(
        self,
        actions: Sequence[str],
        resources: Sequence[str],
        conditions: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        """Grant exactly these actions on exactly these ARNs (no index or object wildcards)."""
        self.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=list(actions),
                resources=list(resources),
                conditions=dict(conditions) if conditions else None,
            )
        )
