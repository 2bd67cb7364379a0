"""The listing's DynamoDB tables: subscribers, and usage records waiting to be (or already) metered."""

from __future__ import annotations

from aws_cdk import RemovalPolicy, aws_dynamodb as dynamodb
from constructs import Construct

from stacks.naming import ListingNames

# Key schema shared with the runtime code (lambda/marketplace_saas) and the local mode.
SUBSCRIBER_PARTITION_KEY = "customerAWSAccountId"
# The LicenseArn, or the product code for legacy listings (see MARKETPLACE.md, "Identity of a buyer").
SUBSCRIBER_SORT_KEY = "subscriptionKey"
# Legacy SNS notifications name the buyer only by CustomerIdentifier; this sparse index finds them.
SUBSCRIBER_BY_CUSTOMER_IDENTIFIER_INDEX = "byCustomerIdentifier"
SUBSCRIBER_CUSTOMER_IDENTIFIER = "customerIdentifier"
# The metering job finds active subscribers (for their hourly zero records) by status.
SUBSCRIBER_BY_STATUS_INDEX = "byStatus"

# One item per license + dimension + usage hour: Marketplace bills only the first record per hour.
USAGE_PARTITION_KEY = "customerAWSAccountId"
# "<usage hour, ISO 8601>#<dimension>#<license id>" ("<hour>#<dimension>" on legacy listings, and for items
# recorded before usage was kept per license: those are still found and sent, by their licenseArn attribute).
USAGE_SORT_KEY = "usageKey"
# Only records still to be sent carry `pendingPartition`, so the metering job reads exactly those,
# oldest hour first, without a Scan.
PENDING_USAGE_INDEX = "pendingByHour"
PENDING_USAGE_PARTITION_KEY = "pendingPartition"
PENDING_USAGE_SORT_KEY = "usageHour"

# A buyer between the fulfillment redirect and the form: keyed by a hash of the cookie's random id.
REGISTRATION_PARTITION_KEY = "registrationKey"

# Lifecycle facts that came before anyone can tell whose they are (an agreement event before the license
# event that names its agreement; a legacy SNS notification before its buyer registers), until they are
# claimed or expire: "agreement#<agreement id>" or "customer-identifier#<CustomerIdentifier>". Kept out of
# the subscribers table, which holds subscribers only.
HELD_EVENTS_PARTITION_KEY = "heldFor"
# Versions before that table held such facts in the subscribers table, under these partition key values;
# they are still claimed there and removed, and a policy with this condition lets a function delete
# nothing else of that table.
FORMER_HELD_EVENTS_ONLY = {
    "ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["agreement#*", "customer-identifier#*"]}
}

TTL_ATTRIBUTE = "expiresAt"


class ListingTables(Construct):
    """Subscribers, usage records, buyers about to register and lifecycle facts waiting for their subscriber,
    for one listing; retained and protected when the config says so."""

    def __init__(self, scope: Construct, construct_id: str, *, names: ListingNames, retain: bool) -> None:
        super().__init__(scope, construct_id)
        self._retain = retain
        self.subscribers = self._build_subscribers_table(names)
        self.usage_records = self._build_usage_records_table(names)
        self.pending_registrations = self._build_table(
            "PendingRegistrations", names.registrations_table, keys=(REGISTRATION_PARTITION_KEY, None)
        )
        self.held_events = self._build_table(
            "HeldEvents", names.held_events_table, keys=(HELD_EVENTS_PARTITION_KEY, None)
        )

    def _build_subscribers_table(self, names: ListingNames) -> dynamodb.TableV2:
        return self._build_table(
            "Subscribers",
            names.subscribers_table,
            keys=(SUBSCRIBER_PARTITION_KEY, SUBSCRIBER_SORT_KEY),
            indexes=[
                dynamodb.GlobalSecondaryIndexPropsV2(
                    index_name=SUBSCRIBER_BY_CUSTOMER_IDENTIFIER_INDEX,
                    partition_key=_string(SUBSCRIBER_CUSTOMER_IDENTIFIER),
                    projection_type=dynamodb.ProjectionType.KEYS_ONLY,
                ),
                dynamodb.GlobalSecondaryIndexPropsV2(
                    index_name=SUBSCRIBER_BY_STATUS_INDEX,
                    partition_key=_string("status"),
                    sort_key=_string(SUBSCRIBER_PARTITION_KEY),
                    projection_type=dynamodb.ProjectionType.INCLUDE,
                    # The metering job reads these: who to bill, and since when they are active.
                    non_key_attributes=["licenseArn", SUBSCRIBER_CUSTOMER_IDENTIFIER, "activatedAt"],
                ),
            ],
        )

    def _build_usage_records_table(self, names: ListingNames) -> dynamodb.TableV2:
        return self._build_table(
            "UsageRecords",
            names.metering_table,
            keys=(USAGE_PARTITION_KEY, USAGE_SORT_KEY),
            indexes=[
                dynamodb.GlobalSecondaryIndexPropsV2(
                    index_name=PENDING_USAGE_INDEX,
                    partition_key=_string(PENDING_USAGE_PARTITION_KEY),
                    sort_key=_string(PENDING_USAGE_SORT_KEY),
                    projection_type=dynamodb.ProjectionType.ALL,
                )
            ],
        )

    def _build_table(
        self,
        construct_id: str,
        table_name: str,
        *,
        keys: tuple[str, str | None],
        indexes: list[dynamodb.GlobalSecondaryIndexPropsV2] | None = None,
    ) -> dynamodb.TableV2:
        partition_key, sort_key = keys
        return dynamodb.TableV2(
            self,
            construct_id,
            table_name=table_name,
            partition_key=_string(partition_key),
            sort_key=_string(sort_key) if sort_key else None,
            global_secondary_indexes=indexes,
            billing=dynamodb.Billing.on_demand(),
            encryption=dynamodb.TableEncryptionV2.aws_managed_key(),
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            deletion_protection=self._retain,
            removal_policy=RemovalPolicy.RETAIN if self._retain else RemovalPolicy.DESTROY,
            time_to_live_attribute=TTL_ATTRIBUTE,
        )


def _string(name: str) -> dynamodb.Attribute:
    return dynamodb.Attribute(name=name, type=dynamodb.AttributeType.STRING)
