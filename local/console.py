"""The local console: a buyer simulator that plays AWS Marketplace, and a dashboard of every listing.

- `/` — per listing: registered subscribers with their status and, apart, those AWS Marketplace announced
  who never registered; usage recorded, and what the emulator billed; and a chart of usage recorded and
  billed per hour over the last 24 hours (inline SVG, see console_chart.py).
- `/buy/<path>` — "subscribe" as a new buyer: the emulator mints a registration token and the page shows
  the button AWS Marketplace shows ("Set up your account"), a form that POSTs the token to the listing's
  fulfillment URL exactly as Marketplace does. The token travels only in that POST body. `?free-trial`
  adds Marketplace's free-trial offer type to that post.
- `POST /event` — send a lifecycle event (cancel, fail, entitlement update, ...) through the emulator.

Server-rendered, no script; every value is escaped.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from html import escape
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs

from local import console_chart
from local.gateway import BILL_NOW_PATH
from local.http_server import BodyRefused, LocalHTTPServer, LocalRequestHandler, request_path, split_target
from marketplace_saas.models import license_id
from operations import export
from operations.target import Target

EVENTS = (
    "subscribe-success",
    "unsubscribe-pending",
    "unsubscribe-success",
    "subscribe-fail",
    "entitlement-updated",
    "renew",
)
STYLE = (
    """
body { font-family: system-ui, sans-serif; margin: 0; color: #1b1f24; background: #f4f6f9; }
header { background: #232f3e; color: #fff; padding: 1rem 1.5rem; }
header a { color: #ffb84d; } main { padding: 1rem 1.5rem; max-width: 75rem; }
section { background: #fff; border-radius: 8px; padding: 1rem 1.25rem; margin-bottom: 1.25rem; }
table { border-collapse: collapse; width: 100%; font-size: 0.9rem; margin: 0.5rem 0 1rem; }
th, td { text-align: left; padding: 0.35rem 0.5rem; border-bottom: 1px solid #e3e6ea; vertical-align: top; }
th { background: #f0f2f5; }
.button { background: #ff9900; color: #1b1f24; border: 0; border-radius: 6px; padding: 0.6rem 1.2rem;
font: inherit; font-weight: 600; cursor: pointer; text-decoration: none; display: inline-block; }
.small { padding: 0.2rem 0.5rem; font-size: 0.8rem; }
.muted { color: #5b6470; } form.inline { display: inline; } h1 { font-size: 1.5rem; margin: 0.5rem 0 1rem; }
"""
    + console_chart.CSS
)
# An event form is five short fields.
MAX_FORM_BYTES = 4096
CSP = "default-src 'none'; style-src 'unsafe-inline'; form-action http://127.0.0.1:*; base-uri 'none'"


def _json(url: str, body: dict[str, Any] | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(  # noqa: S310 - loopback URLs local mode started
        url, data=data, method="POST" if data else "GET", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        return json.loads(response.read())


def _counted(items: list[dict[str, Any]], what: str) -> str:
    """`3 registered (2 active, 1 pending)`: how many, and how many in each status."""
    statuses: dict[str, int] = {}
    for item in items:
        status = str(item.get("status", "pending"))
        statuses[status] = statuses.get(status, 0) + 1
    detail = ", ".join(f"{count} {status}" for status, count in sorted(statuses.items()))
    return escape(f"{len(items)} {what}" + (f" ({detail})" if detail else ""))


def _table(headings: list[str], rows: list[list[str]], empty: str) -> str:
    if not rows:
        return f'<p class="muted">{escape(empty)}</p>'
    head = "".join(f"<th>{escape(h)}</th>" for h in headings)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _catalog_state(catalog: dict[str, Any], product_code: str) -> str:
    """The product's live listing in the emulator's Catalog API: what `--sync-listings --local` changes."""
    heading = "<h3>Listing on AWS Marketplace (Catalog API)</h3>"
    entity = next((item for item in catalog["entities"] if item.get("productCode") == product_code), None)
    if entity is None:
        return heading + f'<p class="muted">No product {escape(product_code)} in the emulator catalog.</p>'
    options = [item for item in entity.get("DeliveryOptions", []) if item.get("FulfillmentUrl")]
    url = (
        f"set: {escape(str(options[0]['FulfillmentUrl']))}"
        if options
        else "not set (./deploy-marketplace.sh --sync-listings --local sets it)"
    )
    last = next(
        (
            item
            for item in catalog.get("changeSets", [])
            if entity["entityId"] in item.get("EntityIdList", [])
        ),
        None,
    )
    change_set = (
        "none yet"
        if last is None
        else escape(
            f"{last['ChangeSetId']}: {last['Status']}"
            + (f" ({last['FailureCode']})" if last.get("FailureCode") else "")
        )
    )
    dimensions = len(entity.get("Dimensions", []))
    return heading + _table(
        ["Title", "Dimensions", "Fulfillment URL", "Last change set"],
        [
            [
                escape(str(entity.get("Description", {}).get("ProductTitle", ""))),
                f"{dimensions} dimension{'s' if dimensions != 1 else ''}",
                url,
                change_set,
            ]
        ],
        "",
    )


class Console:
    def __init__(
        self,
        endpoints: dict[str, Any],
        aws_environment: dict[str, str],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.endpoints = endpoints
        self.clock = clock  # where "the last 24 hours" of the charts end
        self.target = Target(aws_environment["AWS_DEFAULT_REGION"], local=endpoints)
        self.dynamodb = self.target.resource("dynamodb")

    @property
    def emulator(self) -> str:
        return str(self.endpoints["emulator"]["url"])

    def page(self, title: str, body: str) -> str:
        return (
            f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f"<style>{STYLE}</style></head><body><header><strong>Local AWS Marketplace console</strong> · "
            f"{self._environment()}"
            f'<a href="/">Dashboard</a></header><main><h1>{escape(title)}</h1>{body}</main></body></html>'
        )

    def _environment(self) -> str:
        environment = self.endpoints.get("environment")
        return f"environment <strong>{escape(str(environment))}</strong> · " if environment else ""

    def dashboard(self) -> str:
        sections = []
        # (read only when there is a listing to show it for)
        catalog = _json(f"{self.emulator}/_emulator/catalog") if self.endpoints["listings"] else {}
        for path, listing in self.endpoints["listings"].items():
            subscribers = list(export.subscribers(self.target, listing["tables"]["subscribers"]))
            usage = self.dynamodb.Table(listing["tables"]["metering"]).scan()["Items"]
            query = f"productCode={listing['productCode']}"
            billed = _json(f"{self.emulator}/_emulator/metering?{query}")["records"]
            # One account may hold several licenses of a listing: everything here is per license.
            marketplace_status = {
                license_id(str(s["licenseArn"])): s["status"]
                for s in _json(f"{self.emulator}/_emulator/subscriptions?{query}")["subscriptions"]
            }
            # A registered subscriber filled in the form (it wrote registrationDate); AWS Marketplace may have
            # announced others, by a subscription event, who never did: they are listed and counted apart.
            registered = [item for item in subscribers if "registrationDate" in item]
            announced = [item for item in subscribers if "registrationDate" not in item]
            subscriber_rows = [
                [
                    escape(str(item.get("companyName", ""))),
                    escape(str(item.get("contactEmail", ""))),
                    escape(str(item["customerAWSAccountId"])),
                    escape(license_id(str(item.get("licenseArn", "")))),
                    escape(str(item.get("status", ""))),
                    escape(marketplace_status.get(license_id(str(item.get("licenseArn", ""))), "")),
                    escape(str(item.get("registrationDate", ""))),
                    self._event_buttons(
                        listing["productCode"],
                        str(item["customerAWSAccountId"]),
                        str(item.get("licenseArn", "")),
                    )
                    + f' <a class="button small" href="/buy/{escape(path, quote=True)}?account='
                    f'{escape(str(item["customerAWSAccountId"]), quote=True)}">buy another license</a>',
                ]
                for item in registered
            ]
            announced_rows = [
                [
                    escape(str(item["customerAWSAccountId"])),
                    escape(license_id(str(item.get("licenseArn", "")))),
                    escape(str(item.get("status", "pending"))),
                    escape(marketplace_status.get(license_id(str(item.get("licenseArn", ""))), "")),
                    self._event_buttons(
                        listing["productCode"],
                        str(item["customerAWSAccountId"]),
                        str(item.get("licenseArn", "")),
                    ),
                ]
                for item in announced
            ]
            usage_rows = [
                [
                    escape(str(item["customerAWSAccountId"])),
                    escape(license_id(str(item.get("licenseArn", "")))),
                    escape(str(item.get("dimension"))),
                    escape(str(item.get("usageHour"))),
                    escape(str(item.get("quantity"))),
                    escape(str(item.get("meteringStatus"))),
                    escape(str(item.get("failureReason", item.get("meteringRecordId", "")))),
                ]
                for item in sorted(usage, key=lambda i: str(i.get("usageHour")), reverse=True)[:50]
            ]
            billed_rows = [
                [
                    escape(str(r["customer"])),
                    escape(license_id(str(r.get("licenseArn") or ""))),
                    escape(r["dimension"]),
                    escape(r["hour"]),
                    str(r["quantity"]),
                    escape(r["status"]),
                ]
                for r in billed[-50:]
            ]
            sections.append(
                f"<section><h2>{escape(path)} "
                f'<span class="muted">({escape(listing["productCode"])})</span></h2>'
                f'<p><a href="{escape(listing["siteUrl"], quote=True)}">Landing page</a> · '
                f'<a href="/buy/{escape(path, quote=True)}">Subscribe as a new buyer</a> · '
                f'<a href="/buy/{escape(path, quote=True)}?free-trial">Subscribe with a free trial</a></p>'
                f'<p class="counts">{_counted(registered, "registered")} · '
                f"{_counted(announced, 'announced by AWS Marketplace, not registered')}</p>"
                "<h3>Registered subscribers</h3>"
                + _table(
                    [
                        "Company",
                        "E-mail",
                        "AWS account",
                        "License",
                        "Status",
                        "On Marketplace",
                        "Registered",
                        "Send event",
                    ],
                    subscriber_rows,
                    "No registered subscribers yet.",
                )
                + "<h3>Announced by AWS Marketplace, not registered</h3>"
                + _table(
                    ["AWS account", "License", "Status", "On Marketplace", "Send event"],
                    announced_rows,
                    "None: every subscriber AWS Marketplace announced has registered.",
                )
                + "<h3>Usage recorded</h3>"
                + _table(
                    ["AWS account", "License", "Dimension", "Hour", "Quantity", "Metering", "Result"],
                    usage_rows,
                    "No usage yet.",
                )
                + "<h3>Billed by AWS Marketplace (emulator)</h3>"
                + _bill_now_form(path, self.endpoints.get("meteringSeconds"))
                + _table(
                    ["Customer", "License", "Dimension", "Hour", "Quantity", "Status"],
                    billed_rows,
                    "Nothing billed yet.",
                )
                + "<h3>Per hour, last 24 hours</h3>"
                + console_chart.charts(path, usage, self.clock())
                + _catalog_state(catalog, listing["productCode"])
                + "</section>"
            )
        return self.page("Local console", "".join(sections))

    def _event_buttons(self, product_code: str, account: str, license_arn: str) -> str:
        # The license, when the subscriber has one: the emulator refuses an account-only event (409) when
        # the account holds several licenses of the product.
        license_field = (
            f'<input type="hidden" name="licenseArn" value="{escape(license_arn, quote=True)}">'
            if license_arn
            else ""
        )
        buttons = []
        for event in EVENTS:
            buttons.append(
                '<form class="inline" method="post" action="/event">'
                f'<input type="hidden" name="productCode" value="{escape(product_code, quote=True)}">'
                f'<input type="hidden" name="customerAWSAccountId" value="{escape(account, quote=True)}">'
                f"{license_field}"
                f'<input type="hidden" name="type" value="{escape(event, quote=True)}">'
                f'<button class="button small" type="submit">{escape(event)}</button></form>'
            )
        return " ".join(buttons)

    def buy(self, path: str, free_trial: bool, account: str | None = None) -> str | None:
        """A new buyer subscribes; with `account`, that buyer buys another license (concurrent agreements)."""
        listing = self.endpoints["listings"].get(path)
        if listing is None:
            return None
        request: dict[str, Any] = {"productCode": listing["productCode"]}
        if account:
            request |= {"customerAWSAccountId": account, "newAgreement": True}
        minted = _json(f"{self.emulator}/_emulator/subscriptions", request)
        offer = (
            '<input type="hidden" name="x-amzn-marketplace-offer-type" value="free-trial">'
            if free_trial
            else ""
        )
        body = (
            f"<section><h2>You subscribed to {escape(path)}</h2>"
            f"<p>AWS account <strong>{escape(minted['customerAWSAccountId'])}</strong>, license "
            f"<code>{escape(minted['licenseArn'])}</code>.</p>"
            "<p>AWS Marketplace now sends you to the seller's site, with a registration token in a form "
            "post:</p>"
            f'<form method="post" action="{escape(listing["fulfillmentUrl"], quote=True)}">'
            '<input type="hidden" name="x-amzn-marketplace-token" '
            f'value="{escape(minted["token"], quote=True)}">'
            f'{offer}<button class="button" type="submit">Set up your account</button></form></section>'
        )
        return self.page(f"Subscribed to {path}", body)

    def bill_now(self, path: str) -> str | None:
        """Runs the listing's metering job now, its current hour included, and says what it sent."""
        listing = self.endpoints["listings"].get(path)
        if listing is None:
            return None
        url = listing["siteUrl"].rstrip("/") + BILL_NOW_PATH
        report = _json(url, {})
        failed = ", ".join(f"{count} {reason}" for reason, count in sorted(report["failed"].items()))
        return self.page(
            f"Billed {path} now",
            f"<p>The metering job sent {report['sent']} usage record(s) to the emulator: {report['metered']} "
            f"billed, {escape(failed) if failed else 'none failed'}; {report['stillPending']} still pending "
            f"(to be sent again by the next run). {report['subscriptionsClosed']} subscription(s) closed.</p>"
            "<p>The current hour is now closed for the licenses it billed: usage recorded later in this hour "
            "is refused (<code>hour_closed</code>), as for any hour already sent.</p>"
            '<p><a href="/">Back to the dashboard</a></p>',
        )

    def event(self, form: dict[str, str]) -> None:
        # licenseArn picks one of the account's licenses; a subscriber with none has it empty.
        _json(f"{self.emulator}/_emulator/events", {key: value for key, value in form.items() if value})


def _bill_now_form(path: str, metering: object) -> str:
    when = f"every {metering:g} s" if isinstance(metering, int | float) else "on its schedule"
    return (
        '<p class="muted">Usage of an hour is billed once the hour is over, by the metering job '
        f"(here {escape(when)}; in AWS five minutes past every hour). Bill now sends the current "
        "hour too, at once.</p>"
        '<form class="inline" method="post" action="/bill-now">'
        f'<input type="hidden" name="listing" value="{escape(path, quote=True)}">'
        '<button class="button small" type="submit">Bill now</button></form>'
    )


def make_handler(console: Console) -> type[BaseHTTPRequestHandler]:
    class Handler(LocalRequestHandler):
        server_version = "local-console"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, status: int, html: str, location: str | None = None) -> None:
            body = html.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Security-Policy", CSP)
            self.send_header("Referrer-Policy", "no-referrer")
            self.send_header("Cache-Control", "no-store")
            if location:
                self.send_header("Location", location)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            url = split_target(self.path)
            if url.path == "/":
                self._send(200, console.dashboard())
            elif url.path.startswith("/buy/"):
                query = parse_qs(url.query, keep_blank_values=True)  # `?free-trial` is a bare flag
                account = query.get("account", [""])[0]
                if account and not (len(account) == 12 and account.isdigit()):
                    self._send(400, console.page("Bad request", "account: 12 digits."))
                    return
                html = console.buy(url.path.removeprefix("/buy/"), "free-trial" in query, account or None)
                self._send(200, html) if html else self._send(
                    404, console.page("Not found", "No such listing.")
                )
            else:
                self._send(404, console.page("Not found", "Nothing here."))

        def do_POST(self) -> None:
            try:
                raw = self.read_body(MAX_FORM_BYTES)
                text = raw.decode("utf-8")
            except BodyRefused as refused:
                self._send(refused.status, console.page("Bad request", escape(refused.message)))
                return
            except UnicodeDecodeError:
                self._send(400, console.page("Bad request", "The form is not UTF-8."))
                return
            form = {key: values[0] for key, values in parse_qs(text).items()}
            if (
                request_path(self.path) == "/event"
                and {"productCode", "customerAWSAccountId", "type"} <= form.keys()
            ):
                try:
                    console.event(form)
                except urllib.error.HTTPError as error:
                    message = json.loads(error.read() or b"{}").get("message", str(error))
                    self._send(error.code, console.page("Event refused", escape(message)))
                    return
                self._send(303, "", location="/")
            elif request_path(self.path) == "/bill-now" and "listing" in form:
                try:
                    html = console.bill_now(form["listing"])
                except urllib.error.HTTPError as error:
                    message = json.loads(error.read() or b"{}").get("message", str(error))
                    self._send(502, console.page("Billing failed", escape(message)))
                    return
                except (urllib.error.URLError, OSError) as error:
                    self._send(
                        502, console.page("Billing failed", escape(f"the gateway did not answer: {error}"))
                    )
                    return
                self._send(200, html) if html else self._send(
                    404, console.page("Not found", "No such listing.")
                )
            else:
                self._send(400, console.page("Bad request", "Unknown action."))

    return Handler


def serve(port: int, endpoints: dict[str, Any], aws_environment: dict[str, str]) -> LocalHTTPServer:
    return LocalHTTPServer(("127.0.0.1", port), make_handler(Console(endpoints, aws_environment)))
