"""Fixtures shared by the integration tests: the synthesized templates the local tables are built from."""

from __future__ import annotations

from pathlib import Path

import pytest

from local.stack_template import ListingTemplate, load
from stacks.app_builder import build_app
from tests.infrastructure.conftest import ACCOUNT, config_with, listing, new_app

PRODUCT = "PROD_ONBOARD"
CONTRACT_PRODUCT = "PROD_CONTRACT"


@pytest.fixture(scope="session")
def templates() -> dict[str, ListingTemplate]:
    app = new_app()
    app_config = config_with(
        listing(
            "onboard",
            PRODUCT,
            tags={"Team": "onboarding"},
            branding={"accentColor": "#0a7d5a", "supportEmail": "help@onboard.example"},
        ),
        listing("contract", CONTRACT_PRODUCT, pricingModel="contract"),
        tags={"CostCenter": "1234"},
    )
    _, stacks = build_app(app_config, account=ACCOUNT, app=app)
    assembly = app.synth()
    return {
        stack.listing.path: load(Path(assembly.directory) / f"{stack.stack_name}.template.json")
        for stack in stacks
    }
