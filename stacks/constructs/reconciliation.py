"""Reconciliation: a function on a schedule (daily by default) that compares the listing's subscribers with
AWS Marketplace's record of its agreements and repairs what lost events left wrong (marketplace_saas/
reconcile.py). `./deploy-marketplace.sh --reconcile` invokes the same function."""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import (
    Duration,
    aws_events as events,
    aws_lambda,
    aws_ssm as ssm,
)
from constructs import Construct

from stacks.constructs.dead_letters import dead_letter_queue
from stacks.constructs.listing_function import ListingFunction
from stacks.constructs.metering_schedule import allow_metering
from stacks.constructs.schedule import run_on_schedule
from stacks.constructs.tables import FORMER_HELD_EVENTS_ONLY, SUBSCRIBER_BY_STATUS_INDEX, ListingTables
from stacks.naming import RECONCILER_ROLE, ListingNames

TIMEOUT_SECONDS = 600
# Local mode runs this schedule only when asked (`--reconcile --local`): played every minute, as local mode
# plays the metering schedule, it would repair a lost event before anyone could rehearse finding it.
ON_DEMAND_LOCALLY = {"LocalMode": "on-demand"}
# The run (or the last of its retries) has this long to start; the next day's run covers it otherwise.
RUN_MAX_AGE = Duration.hours(6)


class Reconciliation(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        names: ListingNames,
        code: aws_lambda.Code,
        environment: Mapping[str, str],
        tables: ListingTables,
        seller_bus: events.IEventBus,
        schedule: str,
        entity_id: str | None,
        retain: bool,
    ) -> None:
        super().__init__(scope, construct_id)
        # The last run and where the next one starts; the function rewrites it after each run.
        parameter_name = names.reconciliation_parameter
        self.state = ssm.StringParameter(
            self,
            "State",
            parameter_name=parameter_name,
            # The name starts with "/" (said here because a Service Catalog launch's name is a parameter).
            simple_name=False,
            string_value="{}",
            description=f"The last reconciliation of {names.path} with AWS Marketplace's agreements",
        )
        self.failed_runs = dead_letter_queue(self, "FailedRuns", of="the reconciliation's asynchronous runs")
        self.function = ListingFunction(
            self,
            "Function",
            names=names,
            role_name=RECONCILER_ROLE,
            code=code,
            handler="handlers.reconcile.handler",
            description=f"Reconciles {names.path}'s subscribers with AWS Marketplace's agreements",
            environment={
                **environment,
                "PRODUCT_ID": entity_id or "",
                "RECONCILE_STATE_PARAMETER": parameter_name,  # a name, not a reference: local mode reads it
            },
            retain=retain,
            timeout_seconds=TIMEOUT_SECONDS,
            async_failures=self.failed_runs,
            async_max_age=RUN_MAX_AGE,
            reserved_concurrency=1,  # one run at a time: two would repair the same difference twice
        )
        self._allow(tables, seller_bus, entity_id)
        self.rule, self.dead_letters = run_on_schedule(
            self,
            "Schedule",
            function=self.function.function,
            schedule=schedule,
            description=f"Runs {names.function(RECONCILER_ROLE)} ({schedule})",
            max_age=RUN_MAX_AGE,
            dead_letters_of="the reconciliation schedule's target",
        )
        rule = self.rule.node.default_child
        assert isinstance(rule, events.CfnRule)
        rule.cfn_options.metadata = ON_DEMAND_LOCALLY

    def _allow(self, tables: ListingTables, seller_bus: events.IEventBus, entity_id: str | None) -> None:
        function = self.function
        subscribers = tables.subscribers
        # What the lifecycle does with a fact (the repair goes through it), and nothing more.
        function.allow(["dynamodb:GetItem", "dynamodb:UpdateItem"], [subscribers.table_arn])
        function.allow(["dynamodb:DeleteItem"], [subscribers.table_arn], FORMER_HELD_EVENTS_ONLY)
        function.allow(
            ["dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"], [tables.held_events.table_arn]
        )
        # A full pass lists who is active, cancel-pending or pending to find licenses AWS does not know.
        function.allow(["dynamodb:Query"], [f"{subscribers.table_arn}/index/{SUBSCRIBER_BY_STATUS_INDEX}"])
        allow_metering(function, tables)  # a cancellation found within its final hour sends its usage
        function.allow(["aws-marketplace:GetEntitlements"], ["*"])
        seller_bus.grant_put_events_to(function.role)
        # The Agreement API, read only.
        function.allow(
            ["aws-marketplace:SearchAgreements", "aws-marketplace:GetAgreementEntitlements"], ["*"]
        )
        if not entity_id:
            # The product's id is found once by its product code (then kept in the state parameter).
            function.allow(["aws-marketplace:ListEntities", "aws-marketplace:DescribeEntity"], ["*"])
        function.allow(["ssm:GetParameter", "ssm:PutParameter"], [self.state.parameter_arn])
