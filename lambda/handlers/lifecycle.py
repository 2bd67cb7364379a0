"""The listing's subscription queue: AWS Marketplace's EventBridge events and SNS notifications.

Each message is handled on its own (Powertools batch processing): one that fails is reported in
`batchItemFailures` and retried by the queue, then moved to the dead-letter queue; the rest of the batch is
not held back.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from marketplace_saas.lifecycle import UnreadableMessage, parse
from marketplace_saas.observability import logger, metrics
from marketplace_saas.wiring import lifecycle

processor = BatchProcessor(event_type=EventType.SQS)


def handle_message(record: SQSRecord) -> None:
    sent_at = record.attributes.sent_timestamp
    try:
        notice = parse(record.body, int(sent_at) if sent_at else None)
    except UnreadableMessage as error:
        metrics.add_metric(name="LifecycleMessagesUnreadable", unit=MetricUnit.Count, value=1)
        # The reason names a field, never its value: messages carry buyers' identifiers.
        logger.warning(
            "unreadable lifecycle message", extra={"messageId": record.message_id, "reason": str(error)}
        )
        raise
    if notice is None:
        logger.info("lifecycle message needs no action", extra={"messageId": record.message_id})
        return
    outcome = lifecycle().handle(notice)
    if outcome.published:
        metrics.add_metric(name="SubscriberStatusChanges", unit=MetricUnit.Count, value=1)
    logger.info(
        "lifecycle message handled",
        extra={
            "messageId": record.message_id,
            "event": notice.name,
            "channel": notice.channel,
            **outcome.view(),
        },
    )


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    response = process_partial_response(
        event=event, record_handler=handle_message, processor=processor, context=context
    )
    return dict(response)
