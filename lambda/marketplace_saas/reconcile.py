"""Reconciliation: each license in the subscribers table against AWS Marketplace's own record of it.

A subscriber's status comes from the events AWS sends. An event that never arrives (a rule deleted by hand,
a message left in the dead-letter queue past its retention, a deploy gap) would leave a buyer who cancelled
active, or a paying buyer pending, and nothing would notice. The Agreement API keeps the truth: every
purchase agreement of the seller's product, its status, and the licenses it grants. This module reads it
(`SearchAgreements` as proposer, `GetAgreementEntitlements` where a summary is not enough), compares it with
the table license by license, and repairs each difference through the same lifecycle as an event:

    AWS says                    here                            difference             repair
    active                      no subscriber                   missing-subscriber     activation fact
    ended (or failed)           no subscriber                   missing-subscriber     activation, end facts
    active                      pending, cancelled or failed    active-there           activation fact
    ended                       active (or pending)             ended-there            cancellation fact
    a newer agreement           an older agreement              agreement-not-linked   link the newer one
    no agreement grants it      active, cancel-pending, pending unknown-license        reported only

A fact carries AWS's time (the agreement's `lastUpdateTime`), so a late event and a repair of the same
change converge in any order, exactly as two events do (see lifecycle.py). Nothing is ever deleted: a license
AWS does not know is reported for a person to look at. A cancellation found after its final hour is over is
recorded as ended at the end of that hour, and its pending usage is closed, not sent (Marketplace would
refuse it as CustomerNotSubscribed).

Each run starts from where the last complete one started, minus a safety margin (`AfterLastUpdateTime`); a
full pass reads every agreement of the product and also finds the licenses AWS does not know.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from botocore.exceptions import BotoCoreError, ClientError

from marketplace_saas.lifecycle import FINAL_USAGE_WINDOW_MS, Lifecycle, Notice
from marketplace_saas.models import (
    FACTS,
    PROVISIONED_FACT,
    BuyerIdentity,
    SubscriberStatus,
    license_id,
    status_of,
)
from marketplace_saas.settings import ListingSettings
from marketplace_saas.store import StoreUnavailable, error_code, get_consistent, pages, query_page

CATALOG = "AWSMarketplace"
# Agreement statuses (marketplace-agreement's AgreementStatus).
ACTIVE = "ACTIVE"
# The facts (models.py) that end a license here, and those that make it active.
END_FACTS = (FACTS["cancel-pending"], FACTS["cancelled"], FACTS["failed"])
ACTIVE_FACTS = (FACTS["active"], PROVISIONED_FACT)
# Agreements that can end without the license ever having been active (the model: "a payment failure").
NEVER_ACTIVE_AGREEMENT = frozenset({"TERMINATED", "ROLLED_BACK"})
# Another agreement of the same chain took its place (a renewal, a replacement): the license goes on there.
SUCCEEDED_AGREEMENT = frozenset({"RENEWED", "REPLACED", "SUPERSEDED", "ARCHIVED"})
# AWS's record may lag a change by a little: each incremental run reads again from this long before the
# previous run started.
SAFETY_MARGIN = timedelta(hours=6)
LicenseState = Literal["active", "pending", "ended", "failed"]
# The agreement's license in GetAgreementEntitlements (AgreementEntitlementStatus) → what it means here.
ENTITLEMENT_STATE: dict[str, LicenseState] = {
    "PROVISIONED": "active",
    "SCHEDULED": "pending",
    "PENDING": "pending",
    "FAILED": "failed",
    "DEPROVISIONED": "ended",
}
# What a repair of each AWS state leaves here.
EXPECTED_HERE: dict[str, tuple[SubscriberStatus, ...]] = {
    "active": ("active",),
    "failed": ("failed",),
    "ended": ("cancel-pending", "cancelled", "failed"),  # failed: it ended without ever being active
}
DifferenceKind = Literal[
    "missing-subscriber", "active-there", "ended-there", "agreement-not-linked", "unknown-license"
]


class AgreementsUnavailable(Exception):
    """The Agreement or Catalog API refused or could not be reached; the next run tries again."""


@dataclass(frozen=True)
class AwsLicense:
    """One license as AWS's agreements show it: through the newest agreement that grants it."""

    license_arn: str
    account: str
    agreement_id: str  # the newest agreement granting the license
    agreement_status: str
    state: LicenseState
    changed_ms: int  # the agreement's lastUpdateTime: when AWS says the license took this state
    started_ms: int  # when that agreement started


@dataclass(frozen=True)
class Difference:
    kind: DifferenceKind
    account: str
    license_arn: str
    here: str  # the subscriber's status here, or "none"
    there: str  # what AWS says
    action: Literal["repaired", "would repair", "not repaired"]
    note: str = ""

    def line(self) -> str:
        text = f"{self.kind}: {self.account} {self.license_arn}: here {self.here}, AWS {self.there}"
        text += f" → {self.action}"
        return f"{text} ({self.note})" if self.note else text

    def view(self) -> dict[str, str]:
        return {
            "kind": self.kind,
            "customerAWSAccountId": self.account,
            "licenseArn": self.license_arn,
            "here": self.here,
            "there": self.there,
            "action": self.action,
            "note": self.note,
        }


@dataclass
class ReconcileReport:
    full: bool
    dry_run: bool
    since: str | None  # AfterLastUpdateTime of this run (None: every agreement)
    started_at: str = ""
    agreements: int = 0
    licenses: int = 0
    differences: list[Difference] = field(default_factory=list)

    @property
    def repaired(self) -> int:
        return sum(1 for d in self.differences if d.action == "repaired")

    @property
    def unrepairable(self) -> int:
        return sum(1 for d in self.differences if d.action == "not repaired")

    def summary(self) -> dict[str, Any]:
        return {
            "startedAt": self.started_at,
            "full": self.full,
            "dryRun": self.dry_run,
            "since": self.since,
            "agreements": self.agreements,
            "licenses": self.licenses,
            "differences": len(self.differences),
            "repaired": self.repaired,
            "unrepairable": self.unrepairable,
        }

    def view(self) -> dict[str, Any]:
        return {**self.summary(), "found": [d.view() for d in self.differences]}


class RunState:
    """The last run and where the next one starts, in the listing's SSM parameter (one JSON document)."""

    def __init__(self, ssm: Any, parameter: str) -> None:
        self._ssm = ssm
        self._name = parameter

    def read(self) -> dict[str, Any]:
        try:
            value = self._ssm.get_parameter(Name=self._name)["Parameter"]["Value"]
        except ClientError as error:
            if error_code(error) == "ParameterNotFound":
                return {}
            raise StoreUnavailable(f"GetParameter failed: {error_code(error)}") from None
        except BotoCoreError as error:
            raise StoreUnavailable(f"GetParameter failed: {type(error).__name__}") from None
        try:
            state = json.loads(value)
        except ValueError:
            return {}  # not ours (or the stack's initial "{}" mangled): start again with a full pass
        return state if isinstance(state, dict) else {}

    def write(self, state: dict[str, Any]) -> None:
        try:
            self._ssm.put_parameter(
                Name=self._name, Value=json.dumps(state, sort_keys=True), Type="String", Overwrite=True
            )
        except (ClientError, BotoCoreError) as error:
            code = error_code(error) if isinstance(error, ClientError) else type(error).__name__
            raise StoreUnavailable(f"PutParameter failed: {code}") from None


class Reconciler:
    def __init__(
        self,
        settings: ListingSettings,
        lifecycle: Lifecycle,
        subscribers_table: Any,
        agreements: Any,  # a marketplace-agreement client
        catalog: Any,  # a marketplace-catalog client (only to find the product id by its code)
        state: RunState,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._lifecycle = lifecycle
        self._table = subscribers_table
        self._agreements = agreements
        self._catalog = catalog
        self._state = state
        self._clock = clock

    def run(self, *, full: bool = False, dry_run: bool = False) -> ReconcileReport:
        started = datetime.fromtimestamp(self._clock(), UTC)
        state = self._state.read()
        cursor = state.get("cursor") if state.get("productCode") == self._settings.product_code else None
        since = None
        if cursor and not full:
            since = _iso(datetime.fromisoformat(cursor) - SAFETY_MARGIN)
        report = ReconcileReport(full=since is None, dry_run=dry_run, since=since, started_at=_iso(started))
        product_id = self._product_id(state)
        licenses, report.agreements = self._aws_licenses(product_id, since)
        report.licenses = len(licenses)
        now_ms = int(self._clock() * 1000)
        for aws in licenses.values():
            report.differences += self._compare(aws, now_ms, dry_run)
        if report.full:
            report.differences += self._unknown_licenses(set(licenses))
        saved = {**state, "productCode": self._settings.product_code, "productId": product_id}
        saved["lastRun"] = report.summary()
        if not dry_run:
            saved["cursor"] = report.started_at  # a dry run repaired nothing: the next run reads it all again
        self._state.write(saved)
        return report

    # --- AWS's side -----------------------------------------------------------------------------------

    def _product_id(self, state: dict[str, Any]) -> str:
        """The product's id (`prod-…`): the config's entityId, else found once by its product code."""
        if self._settings.product_id:
            return self._settings.product_id
        if state.get("productCode") == self._settings.product_code and state.get("productId"):
            return str(state["productId"])
        try:
            for page in self._catalog.get_paginator("list_entities").paginate(
                Catalog=CATALOG, EntityType="SaaSProduct"
            ):
                for summary in page.get("EntitySummaryList", []):
                    described = self._catalog.describe_entity(Catalog=CATALOG, EntityId=summary["EntityId"])
                    document = described.get("DetailsDocument") or json.loads(
                        described.get("Details") or "{}"
                    )
                    if document.get("Description", {}).get("ProductCode") == self._settings.product_code:
                        return str(summary["EntityId"])
        except (ClientError, BotoCoreError) as error:
            raise AgreementsUnavailable(f"the Catalog API: {_reason(error)}") from None
        raise AgreementsUnavailable(
            f"no SaaS product with product code {self._settings.product_code} in the AWS Marketplace "
            "catalog (set the listing's entityId in the config)"
        )

    def _search(self, filters: dict[str, str]) -> Iterator[dict[str, Any]]:
        request = {
            "catalog": CATALOG,
            "filters": [{"name": name, "values": [value]} for name, value in filters.items()],
            "sort": {"sortBy": "LastUpdateTime", "sortOrder": "ASCENDING"},
            "PaginationConfig": {"PageSize": 50},
        }
        try:
            for page in self._agreements.get_paginator("search_agreements").paginate(**request):
                yield from page.get("agreementViewSummaries", [])
        except (ClientError, BotoCoreError) as error:
            raise AgreementsUnavailable(f"SearchAgreements: {_reason(error)}") from None

    def _aws_licenses(self, product_id: str, since: str | None) -> tuple[dict[str, AwsLicense], int]:
        """Each license the searched agreements grant, through the newest agreement granting it."""
        filters = {
            "PartyType": "Proposer",
            "AgreementType": "PurchaseAgreement",
            "ResourceIdentifier": product_id,
        }
        if since:
            filters["AfterLastUpdateTime"] = since
        chains: dict[str, list[dict[str, Any]]] = {}
        count = 0
        for summary in self._search(filters):
            count += 1
            for entitlement in summary.get("entitlements") or []:
                if entitlement.get("licenseArn"):
                    chains.setdefault(license_id(entitlement["licenseArn"]), []).append(summary)
        licenses = {}
        for lid, agreements in chains.items():
            newest = max(agreements, key=_started)
            if newest["status"] in SUCCEEDED_AGREEMENT:
                # Its successor was not among the agreements changed since the last run: read the chain.
                chain = {name: value for name, value in filters.items() if name != "AfterLastUpdateTime"}
                chain["LicenseArn"] = _license_arn(newest, lid)
                newest = max([newest, *self._search(chain)], key=_started)
            licenses[lid] = self._license(newest, lid)
        return licenses, count

    def _license(self, agreement: dict[str, Any], lid: str) -> AwsLicense:
        status = agreement["status"]
        # Ended, or superseded by an agreement that no longer grants this license: not active either way.
        state: LicenseState = "active" if status == ACTIVE else "ended"
        return AwsLicense(
            license_arn=_license_arn(agreement, lid),
            account=agreement["acceptor"]["accountId"],
            agreement_id=agreement["agreementId"],
            agreement_status=status,
            state=state,
            changed_ms=_ms(agreement.get("lastUpdateTime") or agreement.get("startTime")),
            started_ms=_started(agreement),
        )

    def _entitlement_state(self, aws: AwsLicense) -> LicenseState:
        """An active agreement's license may not be provisioned (yet, or any more): ask."""
        try:
            paginator = self._agreements.get_paginator("get_agreement_entitlements")
            for page in paginator.paginate(agreementId=aws.agreement_id):
                for entitlement in page.get("agreementEntitlements", []):
                    arn = entitlement.get("licenseArn")
                    if arn and license_id(arn) == license_id(aws.license_arn):
                        return ENTITLEMENT_STATE.get(entitlement.get("status", ""), "pending")
        except (ClientError, BotoCoreError) as error:
            raise AgreementsUnavailable(f"GetAgreementEntitlements: {_reason(error)}") from None
        return "pending"  # the agreement names no entitlement for it yet

    # --- comparing and repairing ----------------------------------------------------------------------

    def _compare(self, aws: AwsLicense, now_ms: int, dry_run: bool) -> list[Difference]:
        key = self._key(aws)
        item = self._get(key)
        here: str = status_of(item) if item is not None else "none"
        there: LicenseState = aws.state
        if there == "active" and here != "active":
            there = self._entitlement_state(aws)
        notices = self._facts(aws, there, item, now_ms)
        differences = []
        if notices:
            kind: DifferenceKind = (
                "missing-subscriber"
                if item is None
                else "active-there"
                if there == "active"
                else "ended-there"
            )
            differences.append(self._repair(kind, aws, here, there, notices, dry_run))
        if (
            item is not None
            and item.get("agreementId") not in (None, aws.agreement_id)
            and aws.started_ms > int(item.get("agreementLinkedAt", 0))
        ):
            differences.append(self._link(aws, here, dry_run))
        return differences

    def _facts(
        self, aws: AwsLicense, there: LicenseState, item: dict[str, Any] | None, now_ms: int
    ) -> list[Notice]:
        """The facts that bring this license here in line with AWS (none when it is in step)."""
        here = status_of(item) if item is not None else "none"

        def notice(fact: str, at_ms: int, final_hour_over: bool = False) -> Notice:
            return Notice(
                fact=fact,
                at_ms=at_ms,
                refresh_entitlements=fact == FACTS["active"] and self._settings.has_entitlements,
                channel="reconciliation",
                name=f"reconciliation: license {there}",
                product_code=self._settings.product_code,
                account=aws.account,
                license_arn=aws.license_arn,
                agreement_id=aws.agreement_id,
                final_hour_over=final_hour_over,
            )

        if there == "active":
            # Cancel-pending here too: the buyer bought again during the final hour (a newer agreement).
            return [notice(FACTS["active"], aws.changed_ms)] if here != "active" else []
        if there == "failed":
            return [notice(FACTS["failed"], aws.changed_ms)] if here in ("none", "pending", "active") else []
        if there == "pending":
            return []
        # Ended there. A cancelled (or expired, renewed...) agreement was active once; a terminated or
        # rolled-back one (a failed payment) may never have been.
        was_active = aws.agreement_status not in NEVER_ACTIVE_AGREEMENT
        ended_here = max((int(item[fact]) for fact in END_FACTS if fact in item), default=0) if item else 0
        if here in ("cancel-pending", "cancelled") and aws.changed_ms <= ended_here:
            return []  # it ended here as late as there
        if here == "failed" and not was_active:
            return []
        found: list[Notice] = []
        activated_here = max((int(item[f]) for f in ACTIVE_FACTS if f in item), default=0) if item else 0
        if was_active and (not activated_here or max(ended_here, activated_here) < aws.started_ms):
            # The agreement's start was lost too (a purchase never heard of here, or after an end here the
            # purchase again): active from its start.
            found.append(notice(FACTS["active"], aws.started_ms))
        if now_ms < aws.changed_ms + FINAL_USAGE_WINDOW_MS:
            found.append(notice(FACTS["cancel-pending"], aws.changed_ms))  # the final hour is still open
        else:
            found.append(notice(FACTS["cancelled"], aws.changed_ms + FINAL_USAGE_WINDOW_MS, True))
        return found

    def _repair(
        self,
        kind: DifferenceKind,
        aws: AwsLicense,
        here: str,
        there: str,
        notices: list[Notice],
        dry_run: bool,
    ) -> Difference:
        if dry_run:
            return Difference(kind, aws.account, aws.license_arn, here, there, "would repair")
        status: SubscriberStatus | None = None
        for notice in notices:
            status = self._lifecycle.handle(notice).status
        if status in EXPECTED_HERE[there]:
            return Difference(kind, aws.account, aws.license_arn, here, there, "repaired", f"now {status}")
        # The fact is recorded, and a later one here outweighs it: AWS's record and ours disagree on order.
        return Difference(
            kind,
            aws.account,
            aws.license_arn,
            here,
            there,
            "not repaired",
            f"still {status}: a later change recorded here outweighs AWS's of "
            f"{_iso(datetime.fromtimestamp(aws.changed_ms / 1000, UTC))}",
        )

    def _link(self, aws: AwsLicense, here: str, dry_run: bool) -> Difference:
        there = f"agreement {aws.agreement_id} ({aws.agreement_status})"
        if dry_run:
            return Difference(
                "agreement-not-linked", aws.account, aws.license_arn, here, there, "would repair"
            )
        notice = Notice(
            fact=None,
            at_ms=aws.started_ms,
            refresh_entitlements=False,
            channel="reconciliation",
            name="reconciliation: agreement renewed or replaced",
            product_code=self._settings.product_code,
            account=aws.account,
            license_arn=aws.license_arn,
            agreement_id=aws.agreement_id,
        )
        outcome = self._lifecycle.link_agreement(self._key(aws), notice)
        action: Literal["repaired", "not repaired"] = (
            "repaired" if outcome.action == "applied" else "not repaired"
        )
        return Difference(
            "agreement-not-linked", aws.account, aws.license_arn, here, there, action, outcome.reason
        )

    def _unknown_licenses(self, known: set[str]) -> list[Difference]:
        """Licenses here that no agreement of the product grants: reported, never removed."""
        found = []
        for status in ("active", "cancel-pending", "pending"):
            request = {
                "IndexName": "byStatus",
                "KeyConditionExpression": "#status = :status",
                "ExpressionAttributeNames": {"#status": "status"},
                "ExpressionAttributeValues": {":status": status},
            }
            for page in pages(self._query, request):
                for item in page["Items"]:
                    arn = item.get("licenseArn")
                    if arn and license_id(arn) not in known:
                        found.append(
                            Difference(
                                "unknown-license",
                                item["customerAWSAccountId"],
                                arn,
                                status,
                                "no agreement grants it",
                                "not repaired",
                                "kept as it is: check the license in the AWS Marketplace Management Portal",
                            )
                        )
        return found

    # --- the table ------------------------------------------------------------------------------------

    def _key(self, aws: AwsLicense) -> dict[str, str]:
        identity = BuyerIdentity(aws.account, self._settings.product_code, aws.license_arn, None)
        return {
            "customerAWSAccountId": aws.account,
            "subscriptionKey": identity.subscription_key(self._settings.legacy_identity),
        }

    def _get(self, key: dict[str, str]) -> dict[str, Any] | None:
        return get_consistent(self._table, key)

    def _query(self, **request: Any) -> dict[str, Any]:
        return query_page(self._table, **request)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ms(value: Any) -> int:
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    if isinstance(value, int | float):
        return int(value * 1000)
    return 0


def _started(agreement: dict[str, Any]) -> int:
    return _ms(agreement.get("startTime") or agreement.get("acceptanceTime"))


def _license_arn(agreement: dict[str, Any], lid: str) -> str:
    for entitlement in agreement.get("entitlements") or []:
        arn = entitlement.get("licenseArn")
        if arn and license_id(arn) == lid:
            return str(arn)
    return lid


def _reason(error: ClientError | BotoCoreError) -> str:
    if isinstance(error, ClientError):
        message = error.response.get("Error", {}).get("Message", "")
        return f"{error_code(error)}" + (f" ({message})" if message else "")
    return type(error).__name__
