"""Physical names of a listing's resources, derived from the name prefix and the listing path.

They keep the seed's management commands working (`aws dynamodb scan --table-name
codio-marketplace-subscribers-ai-skills ...`) and are unique per listing, so two listings never collide.
"""

from __future__ import annotations

from dataclasses import dataclass

from stacks.config import function_name_prefix

# The role (and function name suffix) of the listing's reconciliation, which `--reconcile` invokes.
RECONCILER_ROLE = "Reconciler"


@dataclass(frozen=True)
class ListingNames:
    prefix: str
    path: str

    @property
    def stack(self) -> str:
        return f"{self.prefix}-{self.path}"

    @property
    def subscribers_table(self) -> str:
        return f"{self.prefix}-subscribers-{self.path}"

    @property
    def metering_table(self) -> str:
        return f"{self.prefix}-metering-{self.path}"

    @property
    def registrations_table(self) -> str:
        return f"{self.prefix}-registrations-{self.path}"

    @property
    def held_events_table(self) -> str:
        return f"{self.prefix}-held-events-{self.path}"

    @property
    def seller_event_bus(self) -> str:
        """Where the listing publishes `subscriber.*` events for the seller's product."""
        return f"{self.prefix}-{self.path}-subscribers"

    @property
    def notifications_topic(self) -> str:
        return f"{self.prefix}-{self.path}-notifications"

    def site_bucket(self, account: str) -> str:
        return f"{self.prefix}-{self.path}-{account}"

    @property
    def reconciliation_parameter(self) -> str:
        """The SSM parameter where the reconciliation keeps its last run (and `--status` reads it)."""
        return f"/{self.stack}/reconciliation"

    def function(self, role: str) -> str:
        """`CodioMarketplace-ai-skills-RegistrationHandler` for role `RegistrationHandler`."""
        return f"{function_name_prefix(self.prefix)}-{self.path}-{role}"

    def log_group(self, role: str) -> str:
        return f"/aws/lambda/{self.function(role)}"

    @property
    def api_access_log_group(self) -> str:
        return f"/aws/apigateway/{self.stack}/access"
