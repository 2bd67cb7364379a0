"""A local AWS Marketplace: ResolveCustomer, BatchMeterUsage and GetEntitlements over the real wire protocols,
the Agreement API's SearchAgreements, DescribeAgreement and GetAgreementEntitlements (agreements.py), and the
Catalog API's SaaS product change sets (catalog.py).

boto3 reaches it unchanged through `AWS_ENDPOINT_URL_MARKETPLACE_METERING`,
`AWS_ENDPOINT_URL_MARKETPLACE_ENTITLEMENT_SERVICE`, `AWS_ENDPOINT_URL_MARKETPLACE_AGREEMENT` and
`AWS_ENDPOINT_URL_MARKETPLACE_CATALOG`; an admin API
under `/_emulator/` plays the buyer side (subscriptions, tokens, lifecycle events) and shows what was billed.
See local/README.md.
"""

from local.marketplace_emulator.server import EmulatorServer
from local.marketplace_emulator.state import Marketplace

__all__ = ["EmulatorServer", "Marketplace"]
