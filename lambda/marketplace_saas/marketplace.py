"""The two AWS Marketplace calls onboarding makes: ResolveCustomer and GetEntitlements.

References: https://docs.aws.amazon.com/marketplacemetering/latest/APIReference/API_marketplace-metering_ResolveCustomer.html
and https://docs.aws.amazon.com/marketplaceentitlement/latest/APIReference/API_GetEntitlements.html
"""

from __future__ import annotations

from typing import Any, Literal

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from marketplace_saas.models import BuyerIdentity
from marketplace_saas.settings import MARKETPLACE_REGION

# The SDK's standard retry mode backs off on throttling; a buyer's browser waits, so keep it short.
CLIENT_CONFIG = Config(
    region_name=MARKETPLACE_REGION,
    retries={"mode": "standard", "total_max_attempts": 3},
    connect_timeout=3,
    read_timeout=8,
)
TOKEN_REJECTIONS = {"InvalidTokenException": "invalid", "ExpiredTokenException": "expired"}


class TokenRejected(Exception):
    """AWS Marketplace did not accept the registration token; the buyer must open the product again."""

    def __init__(self, reason: Literal["invalid", "expired"]) -> None:
        super().__init__(f"registration token {reason}")
        self.reason = reason


class MarketplaceUnavailable(Exception):
    """Throttled, failing or unreachable even after the SDK's retries; trying again later can work."""


class MarketplaceClient:
    def __init__(self, metering: Any, entitlement: Any) -> None:
        self._metering = metering
        self._entitlement = entitlement

    @classmethod
    def from_environment(cls) -> MarketplaceClient:
        """Clients pinned to us-east-1; AWS_ENDPOINT_URL_* redirect them in local mode and tests."""
        return cls(
            boto3.client("meteringmarketplace", config=CLIENT_CONFIG),
            boto3.client("marketplace-entitlement", config=CLIENT_CONFIG),
        )

    def resolve_customer(self, token: str) -> BuyerIdentity:
        try:
            result = self._metering.resolve_customer(RegistrationToken=token)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code in TOKEN_REJECTIONS:
                raise TokenRejected(TOKEN_REJECTIONS[code]) from None  # type: ignore[arg-type]
            raise MarketplaceUnavailable(f"ResolveCustomer failed: {code}") from None
        except BotoCoreError as error:
            raise MarketplaceUnavailable(f"ResolveCustomer unreachable: {type(error).__name__}") from None
        return BuyerIdentity(
            customer_aws_account_id=result["CustomerAWSAccountId"],
            product_code=result["ProductCode"],
            license_arn=result.get("LicenseArn"),
            customer_identifier=result.get("CustomerIdentifier"),
            agreement_id=(result.get("Metadata") or {}).get("AgreementId") or None,
        )

    def entitlements(self, identity: BuyerIdentity, *, legacy: bool) -> list[dict[str, Any]]:
        """Every entitlement of this license (or, on a legacy listing, this customer), all pages.

        By license, not by account: one account may hold several licenses of a product at once (concurrent
        agreements), each with its own entitlements (GetEntitlements' LICENSE_ARN filter).
        """
        if legacy and identity.customer_identifier:
            customer_filter = {"CUSTOMER_IDENTIFIER": [identity.customer_identifier]}
        elif identity.license_arn:
            customer_filter = {"LICENSE_ARN": [identity.license_arn]}
        else:
            customer_filter = {"CUSTOMER_AWS_ACCOUNT_ID": [identity.customer_aws_account_id]}
        found: list[dict[str, Any]] = []
        request: dict[str, Any] = {"ProductCode": identity.product_code, "Filter": customer_filter}
        try:
            while True:
                page = self._entitlement.get_entitlements(**request)
                found += [_entitlement(item) for item in page.get("Entitlements", [])]
                if not page.get("NextToken"):
                    return found
                request["NextToken"] = page["NextToken"]
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            raise MarketplaceUnavailable(f"GetEntitlements failed: {code}") from None
        except BotoCoreError as error:
            raise MarketplaceUnavailable(f"GetEntitlements unreachable: {type(error).__name__}") from None


def _entitlement(item: dict[str, Any]) -> dict[str, Any]:
    value = item.get("Value", {})
    stored: dict[str, Any] = {"dimension": item.get("Dimension")}
    for key in ("IntegerValue", "DoubleValue", "BooleanValue", "StringValue"):
        if key in value:
            stored["value"] = str(value[key]) if key == "DoubleValue" else value[key]
    if "ExpirationDate" in item:
        expiration = item["ExpirationDate"]
        stored["expirationDate"] = (
            expiration.isoformat() if hasattr(expiration, "isoformat") else str(expiration)
        )
    return stored
