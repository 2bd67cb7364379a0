"""A function EventBridge runs on a schedule, with the schedule's own dead-letter queue for runs it could
not deliver (an alarm watches it)."""

from __future__ import annotations

from aws_cdk import Duration, aws_events as events, aws_events_targets as targets, aws_lambda, aws_sqs as sqs
from constructs import Construct

from stacks.constructs.dead_letters import dead_letter_queue


def run_on_schedule(
    scope: Construct,
    construct_id: str,
    *,
    function: aws_lambda.IFunction,
    schedule: str,
    description: str,
    max_age: Duration,
    dead_letters_of: str,
) -> tuple[events.Rule, sqs.Queue]:
    """The rule (retrying a run twice, for at most `max_age`) and its dead-letter queue `MissedRuns`."""
    dead_letters = dead_letter_queue(scope, "MissedRuns", of=dead_letters_of)
    rule = events.Rule(
        scope,
        construct_id,
        description=description,
        schedule=events.Schedule.expression(schedule),
        targets=[
            targets.LambdaFunction(
                function, retry_attempts=2, max_event_age=max_age, dead_letter_queue=dead_letters
            )
        ],
    )
    return rule, dead_letters
