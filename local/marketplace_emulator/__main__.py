"""`python -m local.marketplace_emulator --host 127.0.0.1 --port PORT`: the emulator, standalone."""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
from pathlib import Path

from local.marketplace_emulator.catalog import DEFAULT_DELAY_SECONDS
from local.marketplace_emulator.notifications import Notifier
from local.marketplace_emulator.persistence import StateFile
from local.marketplace_emulator.server import EmulatorServer
from local.marketplace_emulator.state import (
    DEFAULT_ENDED_TO_DEPROVISIONED_SECONDS,
    AdminError,
    Marketplace,
)

# How often the state is saved for the changes no call makes (deferred events); calls save at once.
STATE_SAVE_SECONDS = 2.0


def seed(marketplace: Marketplace, config_file: Path) -> int:
    """Create a product (and its Catalog SaaSProduct entity) for every enabled listing of a config."""
    listings = json.loads(config_file.read_text(encoding="utf-8")).get("marketplaceListings", {})
    count = 0
    for key, listing in listings.items():
        if not listing.get("enabled", True):
            continue
        try:
            marketplace.put_product(
                {
                    "productCode": listing.get("productCode"),
                    # A listing may declare no dimensions (yet); types, when given, are passed on.
                    "dimensions": [
                        {"name": d.get("name"), **({"types": d["types"]} if "types" in d else {})}
                        for d in listing.get("dimensions", [])
                    ],
                    "pricingModel": listing.get("pricingModel", "subscription"),
                    "legacy": listing.get("legacy", False),
                }
            )
        except AdminError as error:
            raise SystemExit(f"{config_file}: marketplaceListings.{key}: {error.message}") from None
        count += 1
    return count


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m local.marketplace_emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument(
        "--token-lifetime", type=float, default=3600, help="seconds a registration token lives"
    )
    parser.add_argument("--eventbridge-endpoint", help="deliver lifecycle events with PutEvents here")
    parser.add_argument("--sns-endpoint", help="deliver legacy SNS notifications here")
    parser.add_argument(
        "--ended-to-deprovisioned-seconds",
        type=float,
        default=DEFAULT_ENDED_TO_DEPROVISIONED_SECONDS,
        help="seconds from Purchase Agreement Ended to License Deprovisioned when a license is cancelled "
        "(POST /_emulator/events may give its own endedToDeprovisionedSeconds)",
    )
    parser.add_argument(
        "--catalog-delay-seconds",
        type=float,
        default=DEFAULT_DELAY_SECONDS,
        help="seconds each Catalog API change set step (PREPARING, APPLYING) takes",
    )
    parser.add_argument(
        "--seed", type=Path, help="a marketplace-config.json whose enabled listings become products"
    )
    parser.add_argument(
        "--state-file", type=Path, help="keep the state in this file across restarts (read at start)"
    )
    args = parser.parse_args()

    marketplace = Marketplace(token_lifetime_seconds=args.token_lifetime)
    state_file = StateFile(marketplace, args.state_file) if args.state_file else None
    if state_file is not None and state_file.load():
        print(
            f"kept {len(marketplace.subscriptions)} license(s) and {len(marketplace.billed)} billed "
            f"record(s) from {args.state_file}",
            flush=True,
        )
    if args.seed:
        print(f"seeded {seed(marketplace, args.seed)} product(s) from {args.seed}", flush=True)
    try:
        server = EmulatorServer(
            args.host,
            args.port,
            marketplace=marketplace,
            notifier=Notifier(args.eventbridge_endpoint, args.sns_endpoint),
            ended_to_deprovisioned_seconds=args.ended_to_deprovisioned_seconds,
            catalog_delay_seconds=args.catalog_delay_seconds,
            after_change=state_file.save if state_file is not None else None,
        )
    except AdminError as error:
        parser.error(f"--ended-to-deprovisioned-seconds / --catalog-delay-seconds: {error.message}")

    def stop(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    print(f"AWS Marketplace emulator listening on {server.url}", flush=True)
    saving = threading.Event()
    if state_file is not None:
        state_file.save_every(STATE_SAVE_SECONDS, saving)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    saving.set()
    if state_file is not None:
        state_file.save()
    sys.exit(0)


if __name__ == "__main__":
    main()
