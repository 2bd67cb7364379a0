"""The listing's notification topic: alarms and subscriber changes, e-mailed to the seller."""

from __future__ import annotations

from aws_cdk import aws_sns as sns, aws_sns_subscriptions as subscriptions
from constructs import Construct

from stacks.constructs.dead_letters import dead_letter_queue
from stacks.nag import acknowledge
from stacks.naming import ListingNames


class SellerNotifications(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, names: ListingNames, email: str) -> None:
        super().__init__(scope, construct_id)
        self.topic = sns.Topic(
            self,
            "Topic",
            topic_name=names.notifications_topic,
            display_name=f"AWS Marketplace listing {names.path}",
            enforce_ssl=True,
        )
        # AWS sends a confirmation e-mail; nothing is delivered until the seller confirms it.
        # E-mails SNS could not deliver (a full mailbox, a bounce) wait here for two weeks.
        undelivered = dead_letter_queue(self, "Undelivered", of="the e-mail subscription")
        self.topic.add_subscription(subscriptions.EmailSubscription(email, dead_letter_queue=undelivered))
        acknowledge(
            self.topic,
            {
                "AwsSolutions-SNS2": (
                    "CloudWatch alarms and EventBridge cannot publish to a topic encrypted with the AWS "
                    "managed SNS key; the messages are already e-mailed in clear to the seller."
                )
            },
        )
