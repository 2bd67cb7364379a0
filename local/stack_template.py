"""Reads what local mode needs out of a synthesized listing template, so local and cloud cannot drift.

Tables, functions (handler and environment), API routes, the response security headers, queues, event
buses, event rules, SNS subscriptions and event source mappings all come from `<stack>.template.json`, and
the stack's tags from the cloud assembly's `manifest.json` beside it (where `cdk deploy` reads them);
nothing here restates them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Json = dict[str, Any]


DISTRIBUTION = "AWS::CloudFront::Distribution"
# Environment variables naming the listing's site, which the gateway sets to its own loopback address.
GATEWAY_PROVIDED = frozenset({"SITE_ORIGINS"})


class TemplateError(ValueError):
    """The template does not have a shape local mode understands."""


@dataclass(frozen=True)
class TableSpec:
    create_request: Json  # a DynamoDB CreateTable request
    ttl_attribute: str | None


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    name: str
    handler: str
    environment: dict[str, str]
    timeout_seconds: int
    memory_mb: int


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    function: FunctionSpec
    required_headers: tuple[str, ...] = ()
    iam_auth: bool = False
    api_key_required: bool = False


@dataclass(frozen=True)
class QueueSpec:
    logical_id: str
    name: str  # CloudFormation names the queue at deploy time; locally it is `<stack>-<logical id>`
    attributes: dict[str, str]  # CreateQueue attributes, without the redrive policy
    dead_letter_queue: str | None = None  # logical id
    max_receive_count: int = 0


@dataclass(frozen=True)
class RuleSpec:
    """An EventBridge rule that sends matching events to one of the stack's queues."""

    name: str
    event_bus: str  # "default" or the bus's name
    pattern: Json
    queue: str  # logical id


@dataclass(frozen=True)
class EventSourceSpec:
    """A queue → function event source mapping."""

    queue: str  # logical id
    function: FunctionSpec
    batch_size: int
    report_failures: bool


@dataclass(frozen=True)
class TopicSubscriptionSpec:
    topic_arn: str
    queue: str  # logical id
    raw: bool


@dataclass(frozen=True)
class ListingTemplate:
    stack_name: str
    tables: list[TableSpec]
    functions: dict[str, FunctionSpec]
    routes: list[Route]
    scheduled: list[FunctionSpec] = field(default_factory=list)
    security_headers: dict[str, str] = field(default_factory=dict)
    # The API keys' values and the headers the distribution adds to API requests, as the template gives
    # them (a value may be a dynamic reference, which only CloudFormation resolves).
    api_keys: list[Any] = field(default_factory=list)
    origin_headers: dict[str, Any] = field(default_factory=dict)
    table_outputs: dict[str, str] = field(default_factory=dict)
    queues: dict[str, QueueSpec] = field(default_factory=dict)
    event_buses: list[str] = field(default_factory=list)
    rules: list[RuleSpec] = field(default_factory=list)
    event_sources: list[EventSourceSpec] = field(default_factory=list)
    on_demand: list[FunctionSpec] = field(default_factory=list)  # scheduled, run locally only when asked
    topic_subscriptions: list[TopicSubscriptionSpec] = field(default_factory=list)
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)  # the stack's own tags, as a deploy passes them
    output_descriptions: dict[str, str] = field(default_factory=dict)

    def table_name(self, output_key: str) -> str:
        """The table a stack output such as `SubscribersTableName` names."""
        try:
            return self.table_outputs[output_key]
        except KeyError:
            raise TemplateError(f"{self.stack_name} has no output {output_key}") from None


def load(path: Path) -> ListingTemplate:
    template: Json = json.loads(path.read_text(encoding="utf-8"))
    resources: Json = template.get("Resources", {})
    tables = [
        _table(resource["Properties"]) for resource in _of_type(resources, "AWS::DynamoDB::GlobalTable")
    ]
    table_names = {
        logical_id: resource["Properties"]["TableName"]
        for logical_id, resource in resources.items()
        if resource["Type"] == "AWS::DynamoDB::GlobalTable"
    }
    # The site's address (a distribution's domain name) is where local mode's gateway serves it instead.
    distributions = {
        logical_id for logical_id, resource in resources.items() if resource["Type"] == DISTRIBUTION
    }
    functions = {
        logical_id: _function(logical_id, resource["Properties"], table_names, distributions)
        for logical_id, resource in resources.items()
        if resource["Type"] == "AWS::Lambda::Function"
        and "Handler" in resource["Properties"]
        and not logical_id.startswith("CustomCDKBucketDeployment")
    }
    stack_name = path.name.removesuffix(".template.json")
    queues = _queues(stack_name, resources)
    return ListingTemplate(
        stack_name=stack_name,
        tables=tables,
        functions=functions,
        routes=_routes(resources, functions),
        scheduled=_scheduled(resources, functions),
        on_demand=_scheduled(resources, functions, on_demand=True),
        security_headers=_security_headers(resources),
        api_keys=[key["Properties"].get("Value") for key in _of_type(resources, "AWS::ApiGateway::ApiKey")],
        origin_headers=_api_origin_headers(resources),
        table_outputs={
            key: _resolve(output["Value"], table_names)
            for key, output in template.get("Outputs", {}).items()
            if key.endswith("TableName")
        },
        queues=queues,
        event_buses=[str(bus["Properties"]["Name"]) for bus in _of_type(resources, "AWS::Events::EventBus")],
        rules=_queue_rules(resources, queues),
        event_sources=_event_sources(resources, queues, functions),
        topic_subscriptions=_topic_subscriptions(resources, queues),
        description=str(template.get("Description", "")),
        tags=_stack_tags(path),
        output_descriptions={
            key: str(output.get("Description", "")) for key, output in template.get("Outputs", {}).items()
        },
    )


def _stack_tags(template_path: Path) -> dict[str, str]:
    """The tags the cloud assembly gives the stack of this template (where CDK puts `Tags.of(stack)`)."""
    manifest_path = template_path.parent / "manifest.json"
    try:
        manifest: Json = json.loads(manifest_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TemplateError(
            f"{template_path.name}: no manifest.json beside it (synthesize the app)"
        ) from None
    for artifact in manifest.get("artifacts", {}).values():
        properties = artifact.get("properties", {})
        if artifact.get("type") == "aws:cloudformation:stack" and properties.get("templateFile") == (
            template_path.name
        ):
            return {str(key): str(value) for key, value in properties.get("tags", {}).items()}
    raise TemplateError(f"{manifest_path}: no stack artifact has the template {template_path.name}")


def _of_type(resources: Json, resource_type: str) -> list[Json]:
    return [resource for resource in resources.values() if resource["Type"] == resource_type]


def _table(properties: Json) -> TableSpec:
    """The CreateTable request equivalent to an AWS::DynamoDB::GlobalTable (one replica, on demand)."""
    request: Json = {
        "TableName": properties["TableName"],
        "KeySchema": properties["KeySchema"],
        "AttributeDefinitions": properties["AttributeDefinitions"],
        "BillingMode": properties.get("BillingMode", "PAY_PER_REQUEST"),
    }
    indexes = [
        {"IndexName": index["IndexName"], "KeySchema": index["KeySchema"], "Projection": index["Projection"]}
        for index in properties.get("GlobalSecondaryIndexes", [])
    ]
    if indexes:
        request["GlobalSecondaryIndexes"] = indexes
    ttl = properties.get("TimeToLiveSpecification") or {}
    return TableSpec(request, ttl.get("AttributeName") if ttl.get("Enabled") else None)


def _resolve(value: Any, table_names: dict[str, str]) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and set(value) == {"Ref"} and value["Ref"] in table_names:
        return table_names[value["Ref"]]
    raise TemplateError(f"local mode cannot resolve the environment value {json.dumps(value)}")


def _function(
    logical_id: str, properties: Json, table_names: dict[str, str], distributions: set[str]
) -> FunctionSpec:
    variables = properties.get("Environment", {}).get("Variables", {})
    for key in GATEWAY_PROVIDED & set(variables):
        if not any(f'"{distribution}"' in json.dumps(variables[key]) for distribution in distributions):
            raise TemplateError(f"{logical_id}: {key} does not name the listing's distribution")
    return FunctionSpec(
        logical_id=logical_id,
        name=str(properties.get("FunctionName", logical_id)),
        handler=properties["Handler"],
        environment={
            key: _resolve(value, table_names)
            for key, value in variables.items()
            if key not in GATEWAY_PROVIDED
        },
        timeout_seconds=int(properties.get("Timeout", 3)),
        memory_mb=int(properties.get("MemorySize", 128)),
    )


def _invocation_targets(resources: Json, functions: dict[str, FunctionSpec]) -> dict[str, FunctionSpec]:
    """What an integration may invoke, by logical id: each function, and each alias of one (with SnapStart
    the API invokes the alias `live` of a function's published version; locally that is the function)."""
    targets = dict(functions)
    for logical_id, resource in resources.items():
        if resource["Type"] != "AWS::Lambda::Alias":
            continue
        function = _attribute_of(resource["Properties"].get("FunctionName"), functions)
        if function is None:
            raise TemplateError(f"alias {logical_id}: local mode cannot find the function it belongs to")
        targets[logical_id] = functions[function]
    return targets


def _routes(resources: Json, functions: dict[str, FunctionSpec]) -> list[Route]:
    def path_of(resource_id: str) -> str:
        properties = resources[resource_id]["Properties"]
        parent = properties["ParentId"]
        prefix = "" if "Fn::GetAtt" in parent else path_of(parent["Ref"])
        return f"{prefix}/{properties['PathPart']}"

    targets = _invocation_targets(resources, functions)
    routes = []
    for resource in _of_type(resources, "AWS::ApiGateway::Method"):
        properties = resource["Properties"]
        uri = json.dumps(properties.get("Integration", {}).get("Uri", {}))
        target = next((spec for logical_id, spec in targets.items() if f'"{logical_id}"' in uri), None)
        if target is None:
            raise TemplateError(f"no function found for method {properties.get('HttpMethod')}")
        required = tuple(
            name.removeprefix("method.request.header.")
            for name, is_required in properties.get("RequestParameters", {}).items()
            if is_required and name.startswith("method.request.header.")
        )
        routes.append(
            Route(
                method=properties["HttpMethod"],
                path=path_of(properties["ResourceId"]["Ref"]),
                function=target,
                required_headers=required,
                iam_auth=properties.get("AuthorizationType") == "AWS_IAM",
                api_key_required=bool(properties.get("ApiKeyRequired", False)),
            )
        )
    return routes


# A schedule whose rule carries this metadata runs in local mode only when asked (see reconciliation.py).
ON_DEMAND = ("LocalMode", "on-demand")


def _scheduled(
    resources: Json, functions: dict[str, FunctionSpec], *, on_demand: bool = False
) -> list[FunctionSpec]:
    """Functions an EventBridge schedule invokes: those local mode plays on its own clock (the metering
    job), or with `on_demand`, those it runs only when asked (reconciliation)."""
    found = []
    for rule in _of_type(resources, "AWS::Events::Rule"):
        if "ScheduleExpression" not in rule["Properties"]:
            continue
        if (rule.get("Metadata", {}).get(ON_DEMAND[0]) == ON_DEMAND[1]) != on_demand:
            continue
        for target in rule["Properties"].get("Targets", []):
            arn = target.get("Arn", {})
            logical_id = arn.get("Fn::GetAtt", [None])[0] if isinstance(arn, dict) else None
            if logical_id in functions:
                found.append(functions[logical_id])
    return found


def _security_headers(resources: Json) -> dict[str, str]:
    """The headers CloudFront's response headers policy adds, as HTTP header lines."""
    policies = _of_type(resources, "AWS::CloudFront::ResponseHeadersPolicy")
    if not policies:
        return {}
    config = policies[0]["Properties"]["ResponseHeadersPolicyConfig"]
    security = config.get("SecurityHeadersConfig", {})
    headers: dict[str, str] = {}
    if "ContentSecurityPolicy" in security:
        headers["Content-Security-Policy"] = security["ContentSecurityPolicy"]["ContentSecurityPolicy"]
    if "StrictTransportSecurity" in security:
        hsts = security["StrictTransportSecurity"]
        value = f"max-age={hsts['AccessControlMaxAgeSec']}"
        if hsts.get("IncludeSubdomains"):
            value += "; includeSubDomains"
        if hsts.get("Preload"):
            value += "; preload"
        headers["Strict-Transport-Security"] = value
    if "ContentTypeOptions" in security:
        headers["X-Content-Type-Options"] = "nosniff"
    if "FrameOptions" in security:
        headers["X-Frame-Options"] = security["FrameOptions"]["FrameOption"]
    if "ReferrerPolicy" in security:
        headers["Referrer-Policy"] = security["ReferrerPolicy"]["ReferrerPolicy"]
    for custom in config.get("CustomHeadersConfig", {}).get("Items", []):
        headers[custom["Header"]] = custom["Value"]
    return headers


def _api_origin_headers(resources: Json) -> dict[str, Any]:
    """The custom headers the distribution sends to its API origin (the one custom origin)."""
    headers: dict[str, Any] = {}
    for distribution in _of_type(resources, "AWS::CloudFront::Distribution"):
        for origin in distribution["Properties"]["DistributionConfig"].get("Origins", []):
            if "CustomOriginConfig" in origin:
                for header in origin.get("OriginCustomHeaders", []):
                    headers[header["HeaderName"]] = header["HeaderValue"]
    return headers


def _attribute_of(value: Any, known: Json) -> str | None:
    """The logical id in `{"Fn::GetAtt": [id, "Arn"]}` or `{"Ref": id}`, if it is one of `known`."""
    if isinstance(value, dict):
        reference = value.get("Fn::GetAtt", [value.get("Ref")])
        logical_id = reference[0] if isinstance(reference, list) and reference else None
        if logical_id in known:
            return str(logical_id)
    return None


def _queues(stack_name: str, resources: Json) -> dict[str, QueueSpec]:
    queues = {}
    for logical_id, resource in resources.items():
        if resource["Type"] != "AWS::SQS::Queue":
            continue
        properties = resource.get("Properties", {})
        attributes = {
            name: str(properties[name])
            for name in ("VisibilityTimeout", "MessageRetentionPeriod", "DelaySeconds")
            if name in properties
        }
        redrive = properties.get("RedrivePolicy") or {}
        queues[logical_id] = QueueSpec(
            logical_id=logical_id,
            name=str(properties.get("QueueName") or f"{stack_name}-{logical_id}")[:80],
            attributes=attributes,
            dead_letter_queue=_attribute_of(redrive.get("deadLetterTargetArn"), resources),
            max_receive_count=int(redrive.get("maxReceiveCount", 0)),
        )
    return queues


def _queue_rules(resources: Json, queues: dict[str, QueueSpec]) -> list[RuleSpec]:
    """Event-pattern rules whose target is one of the stack's queues (a rule's other targets, such as the
    seller's e-mail topic, have nothing to reach locally)."""
    rules = []
    for logical_id, rule in resources.items():
        if rule["Type"] != "AWS::Events::Rule" or "EventPattern" not in rule["Properties"]:
            continue
        properties = rule["Properties"]
        bus = properties.get("EventBusName", "default")
        bus_id = _attribute_of(bus, resources)
        if bus_id is not None:
            bus = resources[bus_id]["Properties"]["Name"]
        if not isinstance(bus, str):
            raise TemplateError(f"rule {logical_id}: local mode cannot resolve its bus {json.dumps(bus)}")
        for target in properties.get("Targets", []):
            queue = _attribute_of(target.get("Arn"), queues)
            if queue is not None:
                rules.append(RuleSpec(logical_id, bus, properties["EventPattern"], queue))
    return rules


def _event_sources(
    resources: Json, queues: dict[str, QueueSpec], functions: dict[str, FunctionSpec]
) -> list[EventSourceSpec]:
    found = []
    for mapping in _of_type(resources, "AWS::Lambda::EventSourceMapping"):
        properties = mapping["Properties"]
        queue = _attribute_of(properties.get("EventSourceArn"), queues)
        function = _attribute_of(properties.get("FunctionName"), functions)
        if queue is None or function is None:
            raise TemplateError("an event source mapping that is not one of the stack's queues → functions")
        found.append(
            EventSourceSpec(
                queue=queue,
                function=functions[function],
                batch_size=int(properties.get("BatchSize", 10)),
                report_failures="ReportBatchItemFailures" in properties.get("FunctionResponseTypes", []),
            )
        )
    return found


def _topic_subscriptions(resources: Json, queues: dict[str, QueueSpec]) -> list[TopicSubscriptionSpec]:
    found = []
    for subscription in _of_type(resources, "AWS::SNS::Subscription"):
        properties = subscription["Properties"]
        queue = _attribute_of(properties.get("Endpoint"), queues)
        topic = properties.get("TopicArn")
        if properties.get("Protocol") != "sqs" or queue is None or not isinstance(topic, str):
            continue  # e.g. the seller's e-mail subscription
        found.append(TopicSubscriptionSpec(topic, queue, bool(properties.get("RawMessageDelivery", False))))
    return found
