"""The listing's notification topic: every alarm, when it fires and when it recovers, and (when the config
names an e-mail address) subscriber changes, e-mailed to the seller.

The topic exists whether or not an address is set, so no alarm goes without an action: a seller can
subscribe anything to it later (output `AlarmTopicArn`: a pager, a chat webhook, another address).
"""

from __future__ import annotations

from aws_cdk import aws_sns as sns, aws_sns_subscriptions as subscriptions
from constructs import Construct

from stacks.constructs.dead_letters import dead_letter_queue
from stacks.nag import acknowledge
from stacks.naming import ListingNames


class SellerNotifications(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, names: ListingNames, email: str | None
    ) -> None:
        super().__init__(scope, construct_id)
        self.email = email
        self.topic = sns.Topic(
            self,
            "Topic",
            topic_name=names.notifications_topic,
            display_name=f"AWS Marketplace listing {names.path}",
            enforce_ssl=True,
        )
        if email:
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
