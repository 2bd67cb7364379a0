"""Synthesizes a two-listing app (plus a disabled one) once per session; tests assert on its templates.

Lambda bundling is skipped here (`aws:cdk:bundling-stacks` = []): these tests are about the templates, and
the bundle itself is built and checked by `deploy-marketplace.sh --synth` in the CLI tests.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App
from aws_cdk.assertions import Template

from stacks.app_builder import build_app
from stacks.config import MarketplaceConfig, parse_config

ACCOUNT = "123456789012"
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def new_app() -> App:
    """An app with the feature flags `cdk.json` gives the CLI's synth, minus Lambda bundling."""
    flags = json.loads((PROJECT_ROOT / "cdk.json").read_text())["context"]
    return App(context={**flags, "aws:cdk:bundling-stacks": []})


def listing(path: str, product_code: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": f"Listing {path}",
        "description": f"What {path} does",
        "productCode": product_code,
        "path": path,
        "dimensions": [{"name": "users", "description": "Active users", "unit": "Users"}],
        **extra,
    }


def config_with(*listings: dict[str, Any], **settings: Any) -> MarketplaceConfig:
    return parse_config(
        {
            "marketplaceListings": {item["path"]: item for item in listings},
            "deploymentSettings": {"region": "us-east-1", "environment": "test", **settings},
        }
    )


def synth(config: MarketplaceConfig) -> dict[str, Template]:
    _, stacks = build_app(config, account=ACCOUNT, app=new_app())
    return {stack.stack_name: Template.from_stack(stack) for stack in stacks}


@dataclass(frozen=True)
class Synthesized:
    templates: dict[str, Template]

    def __getitem__(self, stack_name: str) -> Template:
        return self.templates[stack_name]

    def resources(self, stack_name: str, resource_type: str) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = self.templates[stack_name].find_resources(resource_type)
        return found


@pytest.fixture(scope="session")
def two_listings() -> Synthesized:
    """ai-skills (retained, with tags) + data-analytics (contract); retired is disabled."""
    config = config_with(
        listing("ai-skills", "PROD_AI", tags={"CostCenter": "training"}),
        listing("data-analytics", "PROD_DATA", pricingModel="contract"),
        listing("retired", "PROD_OLD", enabled=False),
        retainResources=True,
        tags={"Owner": "marketplace-team"},
    )
    return Synthesized(synth(config))


@pytest.fixture(scope="session")
def disposable_listing() -> Synthesized:
    """One listing with retainResources false."""
    return Synthesized(synth(config_with(listing("trial", "PROD_TRIAL"), retainResources=False)))
