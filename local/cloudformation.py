"""Each running listing's stack as CloudFormation clients see it, so a seller's own scripts work locally.

A seller checks a deployment with `aws cloudformation list-stacks` and reads the page's address with
`aws cloudformation describe-stacks --stack-name <stack> --query 'Stacks[0].Outputs[...]'`. Local mode
puts a stand-in stack with the real stack's name, tags and outputs into the local AWS (moto's server), so
the same commands answer with `--endpoint-url` set to it.

The stand-in has no resources (moto's CloudFormation accepts an empty `Resources`; AWS would not, and this
template never goes there): the stack's tables, queues, buses and rules are already made from the
synthesized template, and the gateway plays the rest. Its outputs are those of the real stack that have a
local value (the page, fulfillment and API URLs the gateway serves, and the table names), with the real
outputs' descriptions; its description says it is the local stand-in. Publishing is idempotent: a stack
that is already there (local state kept from an earlier run) is updated in place (`UPDATE_COMPLETE`, as
after a redeploy), and stand-ins of listings that are not running now are removed, so no stack points at
a port that no longer serves.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, WaiterError

from local.stack_template import ListingTemplate

STAND_IN_MARKER = "Local stand-in (./deploy-marketplace.sh --local, no AWS resources) of: "
# https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/template-description-structure.html
MAX_DESCRIPTION = 1024
WAIT = {"Delay": 1, "MaxAttempts": 60}


class StandInError(Exception):
    """The local CloudFormation refused a stand-in stack; the message names the stack and why."""


def stand_in_template(template: ListingTemplate, urls: Mapping[str, str]) -> dict[str, Any]:
    """The stand-in's template: `urls` (output key → local value) plus the table outputs, described as in
    the real template."""
    values = {**template.table_outputs, **urls}
    unknown = sorted(set(values) - set(template.output_descriptions))
    if unknown:
        raise StandInError(f"{template.stack_name}: the synthesized stack has no output {', '.join(unknown)}")
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": (STAND_IN_MARKER + template.description)[:MAX_DESCRIPTION],
        "Resources": {},
        "Outputs": {
            key: {"Value": value, "Description": template.output_descriptions[key]}
            for key, value in sorted(values.items())
        },
    }


def publish(cloudformation: Any, template: ListingTemplate, urls: Mapping[str, str]) -> None:
    """Create the listing's stand-in stack, or bring the one already there up to date."""
    name = template.stack_name
    request = {
        "StackName": name,
        "TemplateBody": json.dumps(stand_in_template(template, urls)),
        "Tags": [{"Key": key, "Value": value} for key, value in sorted(template.tags.items())],
    }
    try:
        if _exists(cloudformation, name):
            _update(cloudformation, request)
        else:
            cloudformation.create_stack(**request)
            cloudformation.get_waiter("stack_create_complete").wait(StackName=name, WaiterConfig=WAIT)
    except (ClientError, BotoCoreError, WaiterError) as error:
        raise StandInError(f"stack {name}: {error}") from None


def retire_others(cloudformation: Any, running: Iterable[str]) -> list[str]:
    """Delete the stand-ins of listings that are not running now; return their names."""
    keep = set(running)
    retired = []
    try:
        for page in cloudformation.get_paginator("describe_stacks").paginate():
            for stack in page["Stacks"]:
                name = stack["StackName"]
                ours = str(stack.get("Description", "")).startswith(STAND_IN_MARKER)
                if ours and name not in keep and stack["StackStatus"] != "DELETE_COMPLETE":
                    cloudformation.delete_stack(StackName=name)
                    retired.append(name)
    except (ClientError, BotoCoreError) as error:
        raise StandInError(f"removing stand-ins of listings not running: {error}") from None
    return retired


def _exists(cloudformation: Any, name: str) -> bool:
    try:
        cloudformation.describe_stacks(StackName=name)
    except ClientError as error:
        if "does not exist" in error.response.get("Error", {}).get("Message", ""):
            return False
        raise
    return True


def _update(cloudformation: Any, request: dict[str, Any]) -> None:
    try:
        cloudformation.update_stack(**request)
    except ClientError as error:
        if "No updates are to be performed" in error.response.get("Error", {}).get("Message", ""):
            return
        raise
    cloudformation.get_waiter("stack_update_complete").wait(StackName=request["StackName"], WaiterConfig=WAIT)
