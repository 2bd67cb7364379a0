#!/usr/bin/env python3
"""CDK entry point: reads and validates marketplace-config.json, then one stack per enabled listing.

Config file: CDK context `config` or the MARKETPLACE_CONFIG environment variable (default
marketplace-config.json). Listing selection: context `listings`, comma-separated paths (default: all).
Environment: context `environment` or MARKETPLACE_ENVIRONMENT (default: deploymentSettings.environment).
"""

from __future__ import annotations

import os
import sys

from aws_cdk import App

from stacks.app_builder import build_app
from stacks.config import ConfigError, load_config

EXIT_BAD_CONFIG = 2


def main() -> int:
    app = App()
    config_path = app.node.try_get_context("config") or os.environ.get(
        "MARKETPLACE_CONFIG", "marketplace-config.json"
    )
    selection = app.node.try_get_context("listings") or ""
    try:
        config = load_config(config_path, app.node.try_get_context("environment") or None)
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
