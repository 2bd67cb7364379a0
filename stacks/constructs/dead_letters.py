"""Dead-letter queues: where what could not be delivered waits (two weeks) for a person and an alarm."""

from __future__ import annotations

from aws_cdk import Duration, aws_sqs as sqs
from constructs import Construct

from stacks.nag import acknowledge

RETENTION = Duration.days(14)  # SQS's longest


def dead_letter_queue(scope: Construct, construct_id: str, *, of: str) -> sqs.Queue:
    """An encrypted, SSL-only queue that is the dead-letter queue `of` something (said in its nag reason)."""
    queue = sqs.Queue(
        scope,
        construct_id,
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        retention_period=RETENTION,
    )
    acknowledge(
        queue,
        dict.fromkeys(
            ("AwsSolutions-SQS3", "Serverless-SQSRedrivePolicy"),
            f"This queue is itself the dead-letter queue of {of}.",
        ),
    )
    return queue
