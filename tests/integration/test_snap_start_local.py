"""Local mode with `snapStart` on: the API invokes aliases, which local mode runs as their functions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aws_cdk import App

from local.stack_template import Route, TemplateError, load
from stacks.app_builder import build_app
from tests.infrastructure.conftest import ACCOUNT, PROJECT_ROOT, config_with, listing

STACK = "codio-marketplace-quick"


def _synth(outdir: Path, *, snap_start: bool) -> Path:
    flags = json.loads((PROJECT_ROOT / "cdk.json").read_text())["context"]
    app = App(outdir=str(outdir), context={**flags, "aws:cdk:bundling-stacks": []})
    build_app(config_with(listing("quick", "PROD_QUICK"), snapStart=snap_start), account=ACCOUNT, app=app)
    app.synth()
    return outdir / f"{STACK}.template.json"


def _routes(routes: list[Route]) -> dict[str, str]:
    return {f"{route.method} {route.path}": route.function.logical_id for route in routes}


@pytest.fixture(scope="module")
def snap_start_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _synth(tmp_path_factory.mktemp("on"), snap_start=True)


def test_each_route_runs_the_function_whose_alias_it_invokes(
    snap_start_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    on = load(snap_start_template)
    off = load(_synth(tmp_path_factory.mktemp("off"), snap_start=False))
    assert _routes(on.routes) == _routes(off.routes)
    handlers = {f"{route.method} {route.path}": route.function.handler for route in on.routes}
    assert handlers == {
        "POST /marketplace/fulfillment": "handlers.fulfillment.handler",
        "GET /marketplace/fulfillment": "handlers.fulfillment.handler",
        "POST /api/register": "handlers.registration.handler",
        "GET /api/registration": "handlers.registration.handler",
        "POST /api/usage": "handlers.usage.handler",
    }
    # The aliases are no functions of their own: local mode runs each function once.
    assert sorted(on.functions) == sorted(off.functions)


def test_an_alias_of_no_function_in_the_template_is_refused(snap_start_template: Path) -> None:
    template = json.loads(snap_start_template.read_text())
    alias_id, alias = next(
        (key, resource)
        for key, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Lambda::Alias"
    )
    alias["Properties"]["FunctionName"] = "arn:aws:lambda:us-east-1:123456789012:function:elsewhere"
    original = snap_start_template.read_text()
    snap_start_template.write_text(json.dumps(template))
    try:
        with pytest.raises(TemplateError, match=f"alias {alias_id}: local mode cannot find the function"):
            load(snap_start_template)
    finally:
        snap_start_template.write_text(original)
