"""The environment local mode's gateway gives the functions it hosts, built from the synthesized template."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from local.gateway import Gateway, GatewaySpec
from local.run import local_aws_environment
from local.stack_template import load
from marketplace_saas import wiring
from marketplace_saas.settings import listing_settings
from stacks.app_builder import build_app
from stacks.page_config import page_config
from tests.infrastructure.conftest import ACCOUNT, config_with, listing, new_app
from tests.integration.local_servers.conftest import PROJECT_ROOT, closed_port


@pytest.fixture
def restored_environment() -> Iterator[None]:
    """The gateway writes the functions' environment into this process's; put it back afterwards."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
        listing_settings.cache_clear()
        wiring.use(None)


def test_the_metering_job_sends_one_batch_at_a_time_against_motos_threaded_server(
    restored_environment: None,
) -> None:
    # moto's server handles requests on threads without a lock around its backends, so the job's concurrent
    # DynamoDB transactions (claim and seal, store the answers) could interleave there.
    config = config_with(listing("metered", "PROD_METERED"), meteringConcurrency=6)
    app = new_app()
    _, (stack,) = build_app(config, account=ACCOUNT, app=app)
    template_file = Path(app.synth().directory) / f"{stack.stack_name}.template.json"
    template = load(template_file)
    (job,) = template.scheduled
    assert job.environment["METERING_CONCURRENCY"] == "6"  # what the stack gives it in AWS
    metered = config.listing_by_path("metered")
    assert metered is not None
    dead = f"http://127.0.0.1:{closed_port()}"
    spec = GatewaySpec(
        listing_path="metered",
        port=closed_port(),
        template=template_file,
        site_root=PROJECT_ROOT / "site",
        page_config=page_config(metered),
        aws_environment=local_aws_environment("us-east-1", dead, dead),
        schedule_seconds=3600,
    )

    Gateway(spec, template)
    listing_settings.cache_clear()
    wiring.use(None)

    assert listing_settings().metering_concurrency == 1
    assert wiring.metering_job()._concurrency == 1
