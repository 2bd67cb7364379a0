#!/usr/bin/env python3
"""CDK entry point: reads and validates marketplace-config.json, then one stack per enabled listing.

Config file: CDK context `config` or the MARKETPLACE_CONFIG environment variable (default
marketplace-config.json). Listing selection: context `listings`, comma-separated paths (default: all).
Environment: context `environment` or MARKETPLACE_ENVIRONMENT (default: deploymentSettings.environment).
With context `catalog-listing`, the Service Catalog portfolio stack instead (see stacks/service_catalog.py).
"""

from __future__ import annotations

import os
import sys

from aws_cdk import App

from stacks.app_builder import build_app
from stacks.config import ConfigError, MarketplaceConfig, load_config
from stacks.service_catalog import build_catalog_app, publication

EXIT_BAD_CONFIG = 2


def build_catalog(app: App, config: MarketplaceConfig) -> None:
    """The portfolio stack alone (`--publish-service-catalog`): context `catalog-listing` (the model
    listing's path), `catalog-principals` (comma-separated ARNs), `catalog-version`."""
    account = config.deployment_settings.account or os.environ.get("CDK_DEFAULT_ACCOUNT")
    if not account:
        raise ConfigError(["the portfolio's AWS account is unknown: set CDK_DEFAULT_ACCOUNT"])
    principals = str(app.node.try_get_context("catalog-principals") or "")
    chosen = publication(
        config,
        str(app.node.get_context("catalog-listing")),
        [principal for principal in principals.split(",") if principal],
        app.node.try_get_context("catalog-version"),
        account,
    )
    build_catalog_app(config, chosen, account=account, app=app)


def main() -> int:
    app = App()
    config_path = app.node.try_get_context("config") or os.environ.get(
        "MARKETPLACE_CONFIG", "marketplace-config.json"
    )
    selection = app.node.try_get_context("listings") or ""
    try:
        config = load_config(config_path, app.node.try_get_context("environment") or None)
        if app.node.try_get_context("catalog-listing"):
            build_catalog(app, config)
        else:
            build_app(
                config,
                only_paths=[path for path in selection.split(",") if path],
                # The environment's own account when the config names it (a deploy has checked that the
                # credentials are for it), else the account of the credentials the CDK CLI found.
                account=config.deployment_settings.account or os.environ.get("CDK_DEFAULT_ACCOUNT"),
                app=app,
            )
    except ConfigError as error:
        print(error.report(), file=sys.stderr)
        return EXIT_BAD_CONFIG
    app.synth()
    return 0


if __name__ == "__main__":
    sys.exit(main())
