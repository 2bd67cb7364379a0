"""What a seller gets per listing, asserted on the synthesized CloudFormation templates."""

from __future__ import annotations

import json
import re
from typing import Any

from stacks.app_builder import build_app
from stacks.constructs.landing_site import CONTENT_SECURITY_POLICY
from tests.infrastructure.conftest import ACCOUNT, Synthesized, config_with, listing, new_app, synth

AI = "codio-marketplace-ai-skills"
DATA = "codio-marketplace-data-analytics"
# Managed policy ids: https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/using-managed-cache-policies.html
CACHING_DISABLED = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"
ALL_VIEWER_EXCEPT_HOST_HEADER = "b689b0a8-53d0-40ab-baf2-68738e2966ac"


def only(resources: dict[str, dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    assert len(resources) == 1, f"expected exactly one, found {sorted(resources)}"
    return next(iter(resources.items()))


def by_property(resources: dict[str, dict[str, Any]], name: str, value: Any) -> dict[str, Any]:
    matches = [r for r in resources.values() if r["Properties"].get(name) == value]
    assert len(matches) == 1, f"expected one resource with {name}={value!r}, found {len(matches)}"
    return matches[0]


# --- one stack per enabled listing -------------------------------------------------------------------


def test_each_enabled_listing_gets_its_own_stack_and_disabled_ones_none(two_listings: Synthesized) -> None:
    assert sorted(two_listings.templates) == [AI, DATA]


def test_two_listings_share_no_physical_name(two_listings: Synthesized) -> None:
    named = {
        "AWS::Lambda::Function": "FunctionName",
        "AWS::DynamoDB::GlobalTable": "TableName",
        "AWS::Logs::LogGroup": "LogGroupName",
        "AWS::ApiGateway::RestApi": "Name",
        "AWS::S3::Bucket": "BucketName",
    }
    names: dict[str, set[str]] = {}
    for stack in (AI, DATA):
        found = set()
        for resource_type, attribute in named.items():
            for resource in two_listings.resources(stack, resource_type).values():
                value = json.dumps(resource["Properties"].get(attribute), sort_keys=True)
                # A name built from a Ref to another resource of the same stack is unique by construction.
                if value != "null" and not re.search(r'"Ref": "(?!AWS::)', value):
                    found.add(value)
        names[stack] = found
    assert len(names[AI]) >= 8
    assert names[AI] & names[DATA] == set()


# --- tables ------------------------------------------------------------------------------------------


def test_tables_have_the_seed_names_on_demand_billing_pitr_and_protection(two_listings: Synthesized) -> None:
    tables = two_listings.resources(AI, "AWS::DynamoDB::GlobalTable")
    for name in (
        "codio-marketplace-subscribers-ai-skills",
        "codio-marketplace-metering-ai-skills",
        "codio-marketplace-held-events-ai-skills",
    ):
        table = by_property(tables, "TableName", name)
        properties = table["Properties"]
        assert properties["BillingMode"] == "PAY_PER_REQUEST"
        replica = properties["Replicas"][0]
        assert replica["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
        assert replica["DeletionProtectionEnabled"] is True
        assert properties["SSESpecification"] == {"SSEEnabled": True, "SSEType": "KMS"}
        assert properties["TimeToLiveSpecification"] == {"AttributeName": "expiresAt", "Enabled": True}
        assert table["DeletionPolicy"] == "Retain"
        assert table["UpdateReplacePolicy"] == "Retain"


def test_usage_records_have_a_sparse_pending_index_by_hour(two_listings: Synthesized) -> None:
    table = by_property(
        two_listings.resources(AI, "AWS::DynamoDB::GlobalTable"),
        "TableName",
        "codio-marketplace-metering-ai-skills",
    )
    (index,) = table["Properties"]["GlobalSecondaryIndexes"]
    assert index["IndexName"] == "pendingByHour"
    assert index["KeySchema"] == [
        {"AttributeName": "pendingPartition", "KeyType": "HASH"},
        {"AttributeName": "usageHour", "KeyType": "RANGE"},
    ]


def test_disposable_listing_tables_are_deleted_with_the_stack(disposable_listing: Synthesized) -> None:
    tables = disposable_listing.resources("codio-marketplace-trial", "AWS::DynamoDB::GlobalTable")
    for table in tables.values():
        assert table["DeletionPolicy"] == "Delete"
        assert table["Properties"]["Replicas"][0]["DeletionProtectionEnabled"] is False


def test_every_log_group_is_kept_or_deleted_as_retain_resources_says(
    two_listings: Synthesized, disposable_listing: Synthesized
) -> None:
    for synthesized, stacks, policy in (
        (two_listings, (AI, DATA), "Retain"),
        (disposable_listing, ("codio-marketplace-trial",), "Delete"),
    ):
        for stack in stacks:
            groups = synthesized.resources(stack, "AWS::Logs::LogGroup")
            assert len(groups) >= 6  # one per function, plus the API's access logs
            wrong = {
                json.dumps(group["Properties"].get("LogGroupName")): group.get("DeletionPolicy")
                for group in groups.values()
                if group.get("DeletionPolicy") != policy or group.get("UpdateReplacePolicy") != policy
            }
            assert not wrong, f"{stack}: log groups not {policy}: {wrong}"


# --- landing site ------------------------------------------------------------------------------------


def test_page_bucket_is_private_encrypted_ssl_only_and_logged(two_listings: Synthesized) -> None:
    buckets = two_listings.resources(AI, "AWS::S3::Bucket")
    page_bucket_id, page_bucket = next(
        (key, value) for key, value in buckets.items() if "BucketName" in value["Properties"]
    )
    properties = page_bucket["Properties"]
    assert properties["BucketName"] == {
        "Fn::Join": ["", ["codio-marketplace-ai-skills-", {"Ref": "AWS::AccountId"}]]
    }
    assert properties["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert properties["BucketEncryption"]["ServerSideEncryptionConfiguration"][0][
        "ServerSideEncryptionByDefault"
    ] == {"SSEAlgorithm": "AES256"}
    log_bucket_id = properties["LoggingConfiguration"]["DestinationBucketName"]["Ref"]
    assert log_bucket_id in buckets and log_bucket_id != page_bucket_id

    policies = two_listings.resources(AI, "AWS::S3::BucketPolicy")
    page_policy = next(p for p in policies.values() if p["Properties"]["Bucket"] == {"Ref": page_bucket_id})
    statements = page_policy["Properties"]["PolicyDocument"]["Statement"]
    deny = next(s for s in statements if s["Effect"] == "Deny")
    assert deny["Action"] == "s3:*"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert deny["Principal"] == {"AWS": "*"}
    reader = next(s for s in statements if s["Effect"] == "Allow")
    assert reader["Principal"] == {"Service": "cloudfront.amazonaws.com"}
    assert reader["Action"] == "s3:GetObject"  # read-only, and only for this listing's distribution
    assert "AWS:SourceArn" in reader["Condition"]["StringEquals"]


def test_distribution_serves_page_and_api_from_one_https_origin(two_listings: Synthesized) -> None:
    _, distribution = only(two_listings.resources(AI, "AWS::CloudFront::Distribution"))
    config = distribution["Properties"]["DistributionConfig"]
    assert config["DefaultRootObject"] == "index.html"
    assert config["DefaultCacheBehavior"]["ViewerProtocolPolicy"] == "redirect-to-https"
    s3_origin = next(o for o in config["Origins"] if "S3OriginConfig" in o)
    assert "OriginAccessControlId" in s3_origin
    assert s3_origin["S3OriginConfig"] == {"OriginAccessIdentity": ""}
    assert config["Logging"]["Prefix"] == "cloudfront/"

    behaviors = {b["PathPattern"]: b for b in config["CacheBehaviors"]}
    assert sorted(behaviors) == ["/api/*", "/marketplace/*"]
    api_origin = next(o for o in config["Origins"] if "CustomOriginConfig" in o)
    for behavior in behaviors.values():
        assert behavior["TargetOriginId"] == api_origin["Id"]
        assert behavior["ViewerProtocolPolicy"] == "redirect-to-https"
        assert "POST" in behavior["AllowedMethods"]
        assert behavior["CachePolicyId"] == CACHING_DISABLED
        assert behavior["OriginRequestPolicyId"] == ALL_VIEWER_EXCEPT_HOST_HEADER
    assert api_origin["CustomOriginConfig"]["OriginProtocolPolicy"] == "https-only"
    # The API's own domain and its stage, named without referring to the stage resource: the registration
    # function is told the distribution's domain (SITE_ORIGINS), and the stage's methods call that function.
    assert api_origin["OriginPath"] == "/live"
    assert '"Ref": "ApiRestApi' in json.dumps(api_origin["DomainName"])
    assert ".execute-api." in json.dumps(api_origin["DomainName"])


def test_every_response_carries_the_security_headers(two_listings: Synthesized) -> None:
    policy_id, policy = only(two_listings.resources(AI, "AWS::CloudFront::ResponseHeadersPolicy"))
    headers = policy["Properties"]["ResponseHeadersPolicyConfig"]["SecurityHeadersConfig"]
    assert headers["ContentSecurityPolicy"]["ContentSecurityPolicy"] == CONTENT_SECURITY_POLICY
    assert "script-src 'self'" in CONTENT_SECURITY_POLICY
    assert "'unsafe-inline'" not in CONTENT_SECURITY_POLICY
    assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY
    assert headers["StrictTransportSecurity"]["AccessControlMaxAgeSec"] >= 31536000
    assert headers["StrictTransportSecurity"]["IncludeSubdomains"] is True
    assert headers["ContentTypeOptions"] == {"Override": True}
    assert headers["FrameOptions"]["FrameOption"] == "DENY"
    assert headers["ReferrerPolicy"]["ReferrerPolicy"] == "same-origin"

    _, distribution = only(two_listings.resources(AI, "AWS::CloudFront::Distribution"))
    config = distribution["Properties"]["DistributionConfig"]
    for behavior in [config["DefaultCacheBehavior"], *config["CacheBehaviors"]]:
        assert behavior["ResponseHeadersPolicyId"] == {"Ref": policy_id}


def test_the_page_and_its_generated_config_are_deployed_to_the_page_bucket(two_listings: Synthesized) -> None:
    _, deployment = only(two_listings.resources(AI, "Custom::CDKBucketDeployment"))
    properties = deployment["Properties"]
    assert len(properties["SourceObjectKeys"]) == 3  # site/, and the generated config.json and brand.css
    assert properties["Prune"] is True
    assert "DistributionId" in properties  # the cache is invalidated after a change
    assert {"/config.json", "/brand.css"} <= set(properties["DistributionPaths"])


def test_the_deployment_function_may_invalidate_only_this_listings_distribution(
    two_listings: Synthesized,
) -> None:
    distribution_id, _ = only(two_listings.resources(AI, "AWS::CloudFront::Distribution"))
    statements = [
        statement
        for policy in two_listings.resources(AI, "AWS::IAM::Policy").values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if any(action.startswith("cloudfront:") for action in _actions(statement))
    ]
    (statement,) = statements
    assert sorted(_actions(statement)) == ["cloudfront:CreateInvalidation", "cloudfront:GetInvalidation"]
    assert statement["Resource"] == {
        "Fn::Join": [
            "",
            [
                "arn:",
                {"Ref": "AWS::Partition"},
                f":cloudfront::{ACCOUNT}:distribution/",
                {"Ref": distribution_id},
            ],
        ]
    }


def test_custom_domain_enforces_tls_1_2() -> None:
    from tests.infrastructure.conftest import config_with, listing, synth

    certificate = "arn:aws:acm:us-east-1:123456789012:certificate/12345678-1234-1234-1234-123456789012"
    templates = synth(
        config_with(
            listing(
                "own-domain",
                "PROD_DOMAIN",
                customDomain={"domainName": "learn.example.com", "certificateArn": certificate},
            )
        )
    )
    template = templates["codio-marketplace-own-domain"]
    _, distribution = only(template.find_resources("AWS::CloudFront::Distribution"))
    config = distribution["Properties"]["DistributionConfig"]
    assert config["Aliases"] == ["learn.example.com"]
    assert config["ViewerCertificate"]["MinimumProtocolVersion"] == "TLSv1.2_2021"
    assert config["ViewerCertificate"]["AcmCertificateArn"] == certificate
    outputs = template.find_outputs("WebsiteUrl")
    assert outputs["WebsiteUrl"]["Value"] == "https://learn.example.com/"


# --- API ---------------------------------------------------------------------------------------------


def test_api_stage_is_throttled_logged_and_never_logs_bodies(two_listings: Synthesized) -> None:
    _, stage = only(two_listings.resources(AI, "AWS::ApiGateway::Stage"))
    properties = stage["Properties"]
    assert properties["StageName"] == "live"
    assert properties["TracingEnabled"] is True
    (method_settings,) = properties["MethodSettings"]
    assert method_settings["DataTraceEnabled"] is False
    assert method_settings["LoggingLevel"] == "ERROR"
    assert method_settings["ThrottlingRateLimit"] == 50
    assert method_settings["ThrottlingBurstLimit"] == 100
    access_log = properties["AccessLogSetting"]
    assert "DestinationArn" in access_log
    assert "requestId" in access_log["Format"]


def _methods(synthesized: Synthesized, stack: str) -> dict[str, dict[str, Any]]:
    template = synthesized[stack].to_json()
    resources = template["Resources"]

    def path_of(resource_id: str) -> str:
        resource = resources[resource_id]["Properties"]
        parent = resource["ParentId"]
        prefix = "" if "Fn::GetAtt" in parent else path_of(parent["Ref"])
        return f"{prefix}/{resource['PathPart']}"

    methods = {}
    for resource in resources.values():
        if resource["Type"] == "AWS::ApiGateway::Method":
            properties = resource["Properties"]
            methods[f"{properties['HttpMethod']} {path_of(properties['ResourceId']['Ref'])}"] = properties
    return methods


def test_api_has_exactly_the_onboarding_routes_and_no_cors(two_listings: Synthesized) -> None:
    methods = _methods(two_listings, AI)
    assert sorted(methods) == [
        "GET /api/registration",
        "GET /marketplace/fulfillment",
        "POST /api/register",
        "POST /api/usage",
        "POST /marketplace/fulfillment",
    ]
    # Buyers' browsers carry no AWS credentials; the seller's product recording usage must sign with SigV4
    assert {route: m["AuthorizationType"] for route, m in methods.items()} == {
        "GET /api/registration": "NONE",
        "GET /marketplace/fulfillment": "NONE",
        "POST /api/register": "NONE",
        "POST /api/usage": "AWS_IAM",
        "POST /marketplace/fulfillment": "NONE",
    }
    for route in ("POST /api/register", "POST /marketplace/fulfillment"):
        assert methods[route]["RequestParameters"] == {"method.request.header.Content-Type": True}
        assert "RequestValidatorId" in methods[route]
    assert "RequestModels" in methods["POST /api/register"]


def test_buyer_routes_refuse_requests_that_did_not_come_through_the_distribution(
    two_listings: Synthesized,
) -> None:
    # API Gateway's own endpoint stays on (the distribution reaches the API there without a custom domain),
    # so API Gateway itself requires the key only the distribution sends, before any function runs.
    for stack in (AI, DATA):
        methods = _methods(two_listings, stack)
        assert {route: m.get("ApiKeyRequired", False) for route, m in methods.items()} == {
            "GET /api/registration": True,
            "GET /marketplace/fulfillment": True,
            "POST /api/register": True,
            "POST /api/usage": False,  # the seller's product calls it on API Gateway's endpoint, SigV4-signed
            "POST /marketplace/fulfillment": True,
        }
        _, api = only(two_listings.resources(stack, "AWS::ApiGateway::RestApi"))
        assert api["Properties"].get("DisableExecuteApiEndpoint", False) is False
        # A key counts only through a usage plan that covers the stage
        key_id, _ = only(two_listings.resources(stack, "AWS::ApiGateway::ApiKey"))
        plan_id, plan = only(two_listings.resources(stack, "AWS::ApiGateway::UsagePlan"))
        (api_stage,) = plan["Properties"]["ApiStages"]
        stage_id, _ = only(two_listings.resources(stack, "AWS::ApiGateway::Stage"))
        assert api_stage["ApiId"] == {
            "Ref": next(iter(two_listings.resources(stack, "AWS::ApiGateway::RestApi")))
        }
        assert api_stage["Stage"] == {"Ref": stage_id}
        _, binding = only(two_listings.resources(stack, "AWS::ApiGateway::UsagePlanKey"))
        assert binding["Properties"] == {
            "KeyId": {"Ref": key_id},
            "KeyType": "API_KEY",
            "UsagePlanId": {"Ref": plan_id},
        }


def test_the_distribution_sends_the_key_whose_value_is_in_no_template(two_listings: Synthesized) -> None:
    for stack in (AI, DATA):
        secret_id, secret = only(two_listings.resources(stack, "AWS::SecretsManager::Secret"))
        assert "SecretString" not in secret["Properties"]  # Secrets Manager generates the value
        generated = secret["Properties"]["GenerateSecretString"]
        assert generated["PasswordLength"] >= 32 and generated["ExcludePunctuation"] is True
        # Both the API key and the distribution's origin header are a dynamic reference to that secret,
        # which CloudFormation resolves at deploy time; the value itself is never synthesized.
        reference = {
            "Fn::Join": ["", ["{{resolve:secretsmanager:", {"Ref": secret_id}, ":SecretString:::}}"]]
        }
        _, key = only(two_listings.resources(stack, "AWS::ApiGateway::ApiKey"))
        assert key["Properties"]["Value"] == reference
        _, distribution = only(two_listings.resources(stack, "AWS::CloudFront::Distribution"))
        config = distribution["Properties"]["DistributionConfig"]
        api_origin = next(o for o in config["Origins"] if "CustomOriginConfig" in o)
        assert api_origin["OriginCustomHeaders"] == [{"HeaderName": "x-api-key", "HeaderValue": reference}]
        s3_origin = next(o for o in config["Origins"] if "S3OriginConfig" in o)
        assert "OriginCustomHeaders" not in s3_origin
        template = json.dumps(two_listings[stack].to_json())
        assert template.count("{{resolve:secretsmanager:") == 2


def test_gateway_errors_use_the_api_json_error_shape(two_listings: Synthesized) -> None:
    responses = two_listings.resources(AI, "AWS::ApiGateway::GatewayResponse")
    types = {r["Properties"]["ResponseType"]: r["Properties"] for r in responses.values()}
    assert {"DEFAULT_4XX", "DEFAULT_5XX", "BAD_REQUEST_BODY"} <= types.keys()
    for properties in types.values():
        template = properties["ResponseTemplates"]["application/json"]
        assert '"error"' in template and '"message"' in template


# --- functions ---------------------------------------------------------------------------------------


def test_registration_function_is_named_as_the_seed_and_logs_where_the_seed_looks(
    two_listings: Synthesized,
) -> None:
    functions = two_listings.resources(AI, "AWS::Lambda::Function")
    function = by_property(functions, "FunctionName", "CodioMarketplace-ai-skills-RegistrationHandler")
    properties = function["Properties"]
    assert properties["Runtime"] == "python3.14"
    assert properties["MemorySize"] == 512
    assert properties["Timeout"] == 15
    assert properties["TracingConfig"] == {"Mode": "Active"}
    assert properties["Handler"] == "handlers.registration.handler"
    assert properties["Environment"]["Variables"]["PRODUCT_CODE"] == "PROD_AI"
    log_group_id = properties["LoggingConfig"]["LogGroup"]["Ref"]
    log_group = two_listings.resources(AI, "AWS::Logs::LogGroup")[log_group_id]
    expected_name = "/aws/lambda/CodioMarketplace-ai-skills-RegistrationHandler"
    assert log_group["Properties"]["LogGroupName"] == expected_name
    assert log_group["Properties"]["RetentionInDays"] == 90


def _statements_of_role(synthesized: Synthesized, stack: str, function_name: str) -> list[dict[str, Any]]:
    functions = synthesized.resources(stack, "AWS::Lambda::Function")
    role_id = by_property(functions, "FunctionName", function_name)["Properties"]["Role"]["Fn::GetAtt"][0]
    statements = []
    for policy in synthesized.resources(stack, "AWS::IAM::Policy").values():
        if {"Ref": role_id} in policy["Properties"]["Roles"]:
            statements += policy["Properties"]["PolicyDocument"]["Statement"]
    role = synthesized.resources(stack, "AWS::IAM::Role")[role_id]
    assert "ManagedPolicyArns" not in role["Properties"]
    return statements


def _actions(statement: dict[str, Any]) -> list[str]:
    actions = statement["Action"]
    return [actions] if isinstance(actions, str) else actions


def _table_id(synthesized: Synthesized, stack: str, name: str) -> str:
    return next(
        key
        for key, table in synthesized.resources(stack, "AWS::DynamoDB::GlobalTable").items()
        if table["Properties"]["TableName"] == name
    )


def _grants(statements: list[dict[str, Any]]) -> dict[str, set[str]]:
    """action → the resources it is allowed on, as JSON strings."""
    grants: dict[str, set[str]] = {}
    for statement in statements:
        assert statement["Effect"] == "Allow"
        resources = (
            statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        )
        for action in _actions(statement):
            grants.setdefault(action, set()).update(json.dumps(r, sort_keys=True) for r in resources)
    return grants


def _assert_deletes_only_held_events(statements: list[dict[str, Any]], subscribers: str, held: str) -> None:
    """DeleteItem: any item of the held-events table; of the subscribers table only the items earlier
    versions held events in (by their partition key), never a subscriber."""
    deletes = [s for s in statements if "dynamodb:DeleteItem" in _actions(s)]
    by_table = {json.dumps(s["Resource"], sort_keys=True): s for s in deletes}
    assert set(by_table) == {json.dumps({"Fn::GetAtt": [t, "Arn"]}) for t in (subscribers, held)}
    assert "Condition" not in by_table[json.dumps({"Fn::GetAtt": [held, "Arn"]})]
    among_subscribers = by_table[json.dumps({"Fn::GetAtt": [subscribers, "Arn"]})]
    assert _actions(among_subscribers) == ["dynamodb:DeleteItem"]
    assert among_subscribers["Condition"] == {
        "ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["agreement#*", "customer-identifier#*"]}
    }


def test_registration_role_may_only_touch_its_own_tables(two_listings: Synthesized) -> None:
    grants = _grants(_statements_of_role(two_listings, AI, "CodioMarketplace-ai-skills-RegistrationHandler"))
    subscribers = _table_id(two_listings, AI, "codio-marketplace-subscribers-ai-skills")
    pending = _table_id(two_listings, AI, "codio-marketplace-registrations-ai-skills")
    arn = lambda logical_id: json.dumps({"Fn::GetAtt": [logical_id, "Arn"]})  # noqa: E731
    assert grants["dynamodb:GetItem"] == {arn(subscribers), arn(pending)}
    assert grants["dynamodb:UpdateItem"] == {arn(subscribers)}
    assert not {"dynamodb:PutItem", "dynamodb:Scan", "dynamodb:DeleteItem"} & grants.keys()
    # a subscription listing has no entitlements to fetch
    assert "aws-marketplace:GetEntitlements" not in grants
    assert {action.split(":")[0] for action in grants} == {"dynamodb", "logs", "xray", "events"}
    # subscriber.registered goes to the listing's own bus only
    bus_id, _ = only(two_listings.resources(AI, "AWS::Events::EventBus"))
    assert grants["events:PutEvents"] == {json.dumps({"Fn::GetAtt": [bus_id, "Arn"]})}


def test_contract_listing_may_fetch_entitlements(two_listings: Synthesized) -> None:
    grants = _grants(
        _statements_of_role(two_listings, DATA, "CodioMarketplace-data-analytics-RegistrationHandler")
    )
    assert grants["aws-marketplace:GetEntitlements"] == {'"*"'}


def test_fulfillment_role_may_resolve_buyers_and_write_pending_registrations_only(
    two_listings: Synthesized,
) -> None:
    grants = _grants(_statements_of_role(two_listings, AI, "CodioMarketplace-ai-skills-FulfillmentHandler"))
    pending = _table_id(two_listings, AI, "codio-marketplace-registrations-ai-skills")
    assert grants["aws-marketplace:ResolveCustomer"] == {'"*"'}
    assert grants["dynamodb:PutItem"] == {json.dumps({"Fn::GetAtt": [pending, "Arn"]})}
    assert {action for action in grants if action.startswith("dynamodb:")} == {"dynamodb:PutItem"}
    for action, resources in grants.items():
        if '"*"' in resources:
            assert action.startswith(("xray:", "aws-marketplace:")), action


def test_the_metering_job_runs_hourly_with_a_dead_letter_queue(two_listings: Synthesized) -> None:
    (rule,) = [
        rule
        for rule in two_listings.resources(AI, "AWS::Events::Rule").values()
        if "ScheduleExpression" in rule["Properties"] and "MeteringJob" in rule["Properties"]["Description"]
    ]
    assert rule["Properties"]["ScheduleExpression"] == "cron(5 * * * ? *)"
    (target,) = rule["Properties"]["Targets"]
    job_id = next(
        key
        for key, function in two_listings.resources(AI, "AWS::Lambda::Function").items()
        if function["Properties"].get("FunctionName") == "CodioMarketplace-ai-skills-MeteringJob"
    )
    assert target["Arn"] == {"Fn::GetAtt": [job_id, "Arn"]}
    assert target["RetryPolicy"]["MaximumRetryAttempts"] == 2
    queue_id = target["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0]
    queue = two_listings.resources(AI, "AWS::SQS::Queue")[queue_id]
    assert queue["Properties"]["SqsManagedSseEnabled"] is True


def test_the_metering_job_has_a_full_vcpu_and_its_concurrency_setting(two_listings: Synthesized) -> None:
    (job,) = [
        function["Properties"]
        for function in two_listings.resources(AI, "AWS::Lambda::Function").values()
        if function["Properties"].get("FunctionName") == "CodioMarketplace-ai-skills-MeteringJob"
    ]
    assert job["MemorySize"] == 1769  # Lambda's one full vCPU; the buyer-facing functions keep 512
    assert job["Timeout"] == 300
    assert job["Environment"]["Variables"]["METERING_CONCURRENCY"] == "8"  # meteringConcurrency's default


def test_a_metering_run_that_fails_every_retry_is_kept_in_a_queue_an_alarm_watches(
    two_listings: Synthesized,
) -> None:
    functions = two_listings.resources(AI, "AWS::Lambda::Function")
    job_id = next(
        key
        for key, function in functions.items()
        if function["Properties"].get("FunctionName") == "CodioMarketplace-ai-skills-MeteringJob"
    )
    # EventBridge invokes the job asynchronously: Lambda retries twice, then sends the run's record there.
    (config,) = [
        config
        for config in two_listings.resources(AI, "AWS::Lambda::EventInvokeConfig").values()
        if config["Properties"]["FunctionName"] == {"Ref": job_id}
    ]
    properties = config["Properties"]
    assert properties["MaximumRetryAttempts"] == 2
    assert properties["MaximumEventAgeInSeconds"] == 50 * 60  # the next hour's run supersedes it
    queue_id = properties["DestinationConfig"]["OnFailure"]["Destination"]["Fn::GetAtt"][0]
    queue = two_listings.resources(AI, "AWS::SQS::Queue")[queue_id]
    assert queue["Properties"]["SqsManagedSseEnabled"] is True
    assert queue["Properties"]["MessageRetentionPeriod"] == 14 * 24 * 3600
    grants = _grants(_statements_of_role(two_listings, AI, "CodioMarketplace-ai-skills-MeteringJob"))
    assert json.dumps({"Fn::GetAtt": [queue_id, "Arn"]}) in grants["sqs:SendMessage"]
    alarm = _alarms(two_listings, AI)["metering-job-dead-letters"]
    assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue_id, "QueueName"]}}]
    # The schedule's own dead-letter queue (runs EventBridge could not deliver) is another queue.
    (rule,) = [
        r
        for r in two_listings.resources(AI, "AWS::Events::Rule").values()
        if "ScheduleExpression" in r["Properties"] and "MeteringJob" in r["Properties"]["Description"]
    ]
    assert rule["Properties"]["Targets"][0]["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0] != queue_id


def test_only_the_scheduled_jobs_have_a_concurrency_limit_of_one_run_at_a_time(
    two_listings: Synthesized,
) -> None:
    limits = {
        function["Properties"].get("FunctionName", key): function["Properties"].get(
            "ReservedConcurrentExecutions"
        )
        for key, function in two_listings.resources(AI, "AWS::Lambda::Function").items()
    }
    assert limits.pop("CodioMarketplace-ai-skills-MeteringJob") == 1
    assert limits.pop("CodioMarketplace-ai-skills-Reconciler") == 1
    assert set(limits.values()) == {None}  # the buyer-facing functions: see checkov-skips.json


def _alarms(synthesized: Synthesized, stack: str) -> dict[str, dict[str, Any]]:
    return {
        alarm["Properties"]["AlarmName"].removeprefix(f"{stack}-"): alarm["Properties"]
        for alarm in synthesized.resources(stack, "AWS::CloudWatch::Alarm").values()
    }


# signal → (namespace, metric, statistic, period in seconds, threshold, comparison)
GE = "GreaterThanOrEqualToThreshold"
EXPECTED_ALARMS = {
    "fulfillment-failures": ("MarketplaceListings", "FulfillmentFailures", "Sum", 300, 5, GE),
    "registration-failures": ("MarketplaceListings", "RegistrationFailures", "Sum", 300, 5, GE),
    "seller-events-unsent": ("MarketplaceListings", "SellerEventsUnsent", "Sum", 300, 1, GE),
    "api-5xx": ("AWS/ApiGateway", "5XXError", "Sum", 300, 1, GE),
    "metering-final-failures": ("MarketplaceListings", "MeteringFinalFailures", "Sum", 3600, 1, GE),
    "usage-pending-too-long": (
        "MarketplaceListings", "OldestPendingUsageAgeHours", "Maximum", 3600, 2, "GreaterThanThreshold",
    ),
    "metering-behind": (
        "MarketplaceListings", "OldestPendingUsageAgeHours", "Maximum", 3600, 12, "GreaterThanThreshold",
    ),
    "lifecycle-dead-letters": ("AWS/SQS", "ApproximateNumberOfMessagesVisible", "Maximum", 300, 1, GE),
    "metering-dead-letters": ("AWS/SQS", "ApproximateNumberOfMessagesVisible", "Maximum", 300, 1, GE),
    "metering-job-dead-letters": ("AWS/SQS", "ApproximateNumberOfMessagesVisible", "Maximum", 300, 1, GE),
    "reconciliation-dead-letters": ("AWS/SQS", "ApproximateNumberOfMessagesVisible", "Maximum", 300, 1, GE),
    "reconciliation-job-dead-letters": (
        "AWS/SQS", "ApproximateNumberOfMessagesVisible", "Maximum", 300, 1, GE,
    ),
    "reconciliation-differences": ("MarketplaceListings", "ReconcileDifferences", "Sum", 3600, 1, GE),
    "reconciliation-unrepairable": ("MarketplaceListings", "ReconcileUnrepairable", "Sum", 3600, 1, GE),
    **{
        f"{function}-{kind}": ("AWS/Lambda", metric, "Sum", 300, 1, GE)
        for function in ("fulfillment", "registration", "usage", "metering", "lifecycle", "reconciliation")
        for kind, metric in (("errors", "Errors"), ("throttles", "Throttles"))
    },
}  # fmt: skip


def test_every_alarm_watches_its_signal(two_listings: Synthesized) -> None:
    alarms = _alarms(two_listings, AI)
    assert set(alarms) == set(EXPECTED_ALARMS)
    for signal, (namespace, metric, statistic, period, threshold, comparison) in EXPECTED_ALARMS.items():
        properties = alarms[signal]
        assert (properties["Namespace"], properties["MetricName"]) == (namespace, metric), signal
        assert (properties["Statistic"], properties["Period"]) == (statistic, period), signal
        assert (properties["Threshold"], properties["ComparisonOperator"]) == (threshold, comparison), signal
        assert properties["EvaluationPeriods"] == 1 and properties["TreatMissingData"] == "notBreaching"
        assert properties["AlarmDescription"]
        if namespace == "MarketplaceListings":
            assert properties["Dimensions"] == [{"Name": "service", "Value": AI}]


def test_every_alarm_notifies_the_listings_topic_even_with_no_e_mail_configured(
    two_listings: Synthesized,
) -> None:
    """No notification e-mail in this config: the topic exists all the same (an output, for the seller to
    subscribe to), every alarm notifies it when it fires and when it recovers, and nobody is subscribed."""
    for stack in (AI, DATA):
        topic_id, _ = only(two_listings.resources(stack, "AWS::SNS::Topic"))
        alarms = two_listings.resources(stack, "AWS::CloudWatch::Alarm")
        assert alarms
        for alarm in alarms.values():
            properties = alarm["Properties"]
            assert properties["AlarmActions"] == [{"Ref": topic_id}], properties["AlarmName"]
            assert properties["OKActions"] == [{"Ref": topic_id}], properties["AlarmName"]
        subscriptions = two_listings.resources(stack, "AWS::SNS::Subscription").values()
        assert [s for s in subscriptions if s["Properties"]["TopicArn"] == {"Ref": topic_id}] == []
        assert two_listings[stack].to_json()["Outputs"]["AlarmTopicArn"]["Value"] == {"Ref": topic_id}
        rules = two_listings.resources(stack, "AWS::Events::Rule").values()
        # subscriber changes are e-mailed only to an address the config names
        assert not [r for r in rules if topic_id in json.dumps(r["Properties"].get("Targets", []))]


def test_each_alarm_watches_its_own_resource(two_listings: Synthesized) -> None:
    alarms = _alarms(two_listings, AI)
    functions = two_listings.resources(AI, "AWS::Lambda::Function")
    for function in ("fulfillment", "registration", "usage", "metering", "lifecycle"):
        for kind in ("errors", "throttles"):
            (dimension,) = alarms[f"{function}-{kind}"]["Dimensions"]
            watched = functions[dimension["Value"]["Ref"]]["Properties"]["FunctionName"]
            role = {"metering": "MeteringJob", "lifecycle": "Lifecycle"}.get(
                function, f"{function.capitalize()}Handler"
            )
            assert watched == f"CodioMarketplace-ai-skills-{role}"
    _, queue = _lifecycle_queue(two_listings, AI)
    (dimension,) = alarms["lifecycle-dead-letters"]["Dimensions"]
    dead_letters = queue["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
    assert dimension["Value"] == {"Fn::GetAtt": [dead_letters, "QueueName"]}
    api = {d["Name"]: d["Value"] for d in alarms["api-5xx"]["Dimensions"]}
    assert api["ApiName"] == "codio-marketplace-ai-skills-api"


def test_alarms_e_mail_the_seller_when_they_fire_and_recover() -> None:
    config = config_with(listing("mail", "PROD_MAIL", notificationEmail="ops@example.com"))
    synthesized = Synthesized(synth(config))
    stack = "codio-marketplace-mail"
    topic_id, _ = only(synthesized.resources(stack, "AWS::SNS::Topic"))
    (subscription,) = [
        s["Properties"]
        for s in synthesized.resources(stack, "AWS::SNS::Subscription").values()
        if s["Properties"]["Protocol"] == "email"
    ]
    assert subscription["Endpoint"] == "ops@example.com"
    for signal, properties in _alarms(synthesized, stack).items():
        assert properties["AlarmActions"] == [{"Ref": topic_id}], signal
        assert properties["OKActions"] == [{"Ref": topic_id}], signal


def test_the_dashboard_shows_health_and_business_signals(two_listings: Synthesized) -> None:
    (dashboard,) = two_listings.resources(AI, "AWS::CloudWatch::Dashboard").values()
    assert dashboard["Properties"]["DashboardName"] == AI
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    for metric in (
        "Registrations", "BuyersArrived", "ActiveSubscribers", "UsageBilled_users", "UsageRecordsMetered",
        "PendingUsageRecords", "OldestPendingUsageAgeHours", "5XXError", "Errors", "Throttles",
    ):  # fmt: skip
        assert metric in body, metric
    assert "alarm" in body  # the alarm status widget
    outputs = two_listings[AI].to_json()["Outputs"]
    assert "DashboardName" in outputs


def test_the_metering_job_may_meter_pending_usage_and_close_ended_subscriptions(
    two_listings: Synthesized,
) -> None:
    grants = _grants(_statements_of_role(two_listings, AI, "CodioMarketplace-ai-skills-MeteringJob"))
    usage = _table_id(two_listings, AI, "codio-marketplace-metering-ai-skills")
    subscribers = _table_id(two_listings, AI, "codio-marketplace-subscribers-ai-skills")
    usage_arn = json.dumps({"Fn::GetAtt": [usage, "Arn"]})
    assert grants["aws-marketplace:BatchMeterUsage"] == {'"*"'}
    subscribers_arn = json.dumps({"Fn::GetAtt": [subscribers, "Arn"]})
    # Usage records are sealed; subscribers whose cancellation has taken effect are closed, nothing else.
    assert grants["dynamodb:UpdateItem"] == {usage_arn, subscribers_arn}
    assert "dynamodb:PutItem" not in grants and "dynamodb:DeleteItem" not in grants
    assert "dynamodb:Scan" not in grants
    assert any("pendingByHour" in resource for resource in grants["dynamodb:Query"])
    assert any("byStatus" in resource and subscribers in resource for resource in grants["dynamodb:Query"])
    # who registered, for zero records; records another run changed, read again while claiming a batch
    assert grants["dynamodb:BatchGetItem"] == {subscribers_arn, usage_arn}


def test_usage_recording_may_read_subscribers_and_add_usage_only(two_listings: Synthesized) -> None:
    grants = _grants(_statements_of_role(two_listings, AI, "CodioMarketplace-ai-skills-UsageHandler"))
    usage = _table_id(two_listings, AI, "codio-marketplace-metering-ai-skills")
    subscribers = _table_id(two_listings, AI, "codio-marketplace-subscribers-ai-skills")
    assert grants["dynamodb:Query"] == {json.dumps({"Fn::GetAtt": [subscribers, "Arn"]})}
    assert grants["dynamodb:UpdateItem"] == {json.dumps({"Fn::GetAtt": [usage, "Arn"]})}
    assert {action.split(":")[0] for action in grants} == {"dynamodb", "logs", "xray"}


# --- outputs and tags --------------------------------------------------------------------------------


def test_outputs_give_the_urls_to_enter_in_the_marketplace_portal(two_listings: Synthesized) -> None:
    outputs = two_listings[AI].to_json()["Outputs"]
    expected = {"WebsiteUrl", "FulfillmentUrl", "ApiUrl", "SubscribersTableName", "MeteringTableName"}
    assert expected <= set(outputs)
    fulfillment = json.dumps(outputs["FulfillmentUrl"]["Value"])
    assert "https://" in fulfillment and "/marketplace/fulfillment" in fulfillment
    assert "DomainName" in fulfillment  # the distribution's domain, not the raw API Gateway one


def test_every_taggable_resource_carries_the_cost_allocation_tags(two_listings: Synthesized) -> None:
    expected = {
        "Stack": AI,
        "Listing": "ai-skills",
        "Environment": "test",
        "Owner": "marketplace-team",
        "CostCenter": "training",
    }
    tagged = 0
    for logical_id, resource in two_listings[AI].to_json()["Resources"].items():
        tags = resource.get("Properties", {}).get("Tags")
        if isinstance(tags, list):
            found = {tag["Key"]: tag["Value"] for tag in tags}
        elif isinstance(tags, dict):
            found = tags
        else:
            continue
        tagged += 1
        assert expected.items() <= found.items(), logical_id
    assert tagged >= 10
    data_tags = two_listings[DATA].to_json()["Resources"]
    assert all(
        "CostCenter" not in json.dumps(resource.get("Properties", {}).get("Tags", []))
        for resource in data_tags.values()
    )


# --- subscription lifecycle ----------------------------------------------------------------------------


def _lifecycle_queue(synthesized: Synthesized, stack: str) -> tuple[str, dict[str, Any]]:
    queues = synthesized.resources(stack, "AWS::SQS::Queue")
    return only({key: q for key, q in queues.items() if "RedrivePolicy" in q["Properties"]})


def test_marketplace_events_reach_one_encrypted_queue_with_a_dead_letter_queue(
    two_listings: Synthesized,
) -> None:
    queue_id, queue = _lifecycle_queue(two_listings, AI)
    properties = queue["Properties"]
    assert properties["SqsManagedSseEnabled"] is True
    dead_letters = properties["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
    assert properties["RedrivePolicy"]["maxReceiveCount"] == 5
    lifecycle = by_property(
        two_listings.resources(AI, "AWS::Lambda::Function"),
        "FunctionName",
        "CodioMarketplace-ai-skills-Lifecycle",
    )
    assert properties["VisibilityTimeout"] >= 6 * lifecycle["Properties"]["Timeout"]
    policies = [
        p["Properties"]["PolicyDocument"]["Statement"]
        for p in two_listings.resources(AI, "AWS::SQS::QueuePolicy").values()
        if {"Ref": queue_id} in p["Properties"]["Queues"]
    ]
    assert any(
        s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        for statements in policies
        for s in statements
    )
    rules = [
        rule["Properties"]
        for rule in two_listings.resources(AI, "AWS::Events::Rule").values()
        if "EventPattern" in rule["Properties"] and "EventBusName" not in rule["Properties"]
    ]
    assert {r["EventPattern"]["source"][0] for r in rules} == {"aws.agreement-marketplace"}
    (licenses,) = [r for r in rules if "License Updated - Manufacturer" in r["EventPattern"]["detail-type"]]
    assert licenses["EventPattern"]["detail"] == {"product": {"code": ["PROD_AI"]}}  # only its own product
    for rule in rules:
        (target,) = rule["Targets"]
        assert target["Arn"] == {"Fn::GetAtt": [queue_id, "Arn"]}
        assert target["DeadLetterConfig"]["Arn"] == {"Fn::GetAtt": [dead_letters, "Arn"]}


def test_the_lifecycle_function_reports_partial_batch_failures(two_listings: Synthesized) -> None:
    queue_id, _ = _lifecycle_queue(two_listings, AI)
    (mapping,) = two_listings.resources(AI, "AWS::Lambda::EventSourceMapping").values()
    properties = mapping["Properties"]
    assert properties["EventSourceArn"] == {"Fn::GetAtt": [queue_id, "Arn"]}
    assert properties["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert properties["BatchSize"] == 10


def test_subscriber_changes_are_published_on_the_listings_own_bus(two_listings: Synthesized) -> None:
    bus_id, bus = only(two_listings.resources(AI, "AWS::Events::EventBus"))
    assert bus["Properties"]["Name"] == "codio-marketplace-ai-skills-subscribers"
    grants = _grants(_statements_of_role(two_listings, AI, "CodioMarketplace-ai-skills-Lifecycle"))
    assert grants["events:PutEvents"] == {json.dumps({"Fn::GetAtt": [bus_id, "Arn"]})}
    subscribers = _table_id(two_listings, AI, "codio-marketplace-subscribers-ai-skills")
    held = _table_id(two_listings, AI, "codio-marketplace-held-events-ai-skills")
    assert "dynamodb:Scan" not in grants
    assert json.dumps({"Fn::GetAtt": [subscribers, "Arn"]}) in grants["dynamodb:UpdateItem"]
    assert json.dumps({"Fn::GetAtt": [held, "Arn"]}) in grants["dynamodb:UpdateItem"]
    _assert_deletes_only_held_events(
        _statements_of_role(two_listings, AI, "CodioMarketplace-ai-skills-Lifecycle"), subscribers, held
    )
    lifecycle = by_property(
        two_listings.resources(AI, "AWS::Lambda::Function"),
        "FunctionName",
        "CodioMarketplace-ai-skills-Lifecycle",
    )
    environment = lifecycle["Properties"]["Environment"]["Variables"]
    assert environment["SELLER_EVENT_BUS"] == "codio-marketplace-ai-skills-subscribers"


def _legacy_topics(**extra: Any) -> list[str]:
    synthesized = Synthesized(synth(config_with(listing("old", "PROD_OLD", legacy=True, **extra))))
    subscriptions = synthesized.resources("codio-marketplace-old", "AWS::SNS::Subscription").values()
    return sorted(s["Properties"]["TopicArn"] for s in subscriptions if s["Properties"]["Protocol"] == "sqs")


def test_a_legacy_contract_listing_also_hears_its_sns_topics() -> None:
    assert _legacy_topics(pricingModel="contract") == [
        "arn:aws:sns:us-east-1:287250355862:aws-mp-entitlement-notification-PROD_OLD",
        "arn:aws:sns:us-east-1:287250355862:aws-mp-subscription-notification-PROD_OLD",
    ]


def test_a_legacy_subscription_listing_hears_no_entitlement_topic_since_aws_has_none() -> None:
    # Subscribing to aws-mp-entitlement-notification-<code> for a subscription product fails the deploy.
    assert _legacy_topics() == [
        "arn:aws:sns:us-east-1:287250355862:aws-mp-subscription-notification-PROD_OLD"
    ]


def test_a_legacy_listings_registration_folds_in_held_events_and_deletes_no_subscriber() -> None:
    synthesized = Synthesized(synth(config_with(listing("old", "PROD_OLD", legacy=True))))
    stack = "codio-marketplace-old"
    statements = _statements_of_role(synthesized, stack, "CodioMarketplace-old-RegistrationHandler")
    subscribers = _table_id(synthesized, stack, "codio-marketplace-subscribers-old")
    held = _table_id(synthesized, stack, "codio-marketplace-held-events-old")
    _assert_deletes_only_held_events(statements, subscribers, held)
    assert json.dumps({"Fn::GetAtt": [held, "Arn"]}) in _grants(statements)["dynamodb:GetItem"]


def test_a_listing_outside_us_east_1_gets_marketplace_events_forwarded_from_there() -> None:
    config = config_with(listing("eu", "PROD_EU"), region="eu-west-1")
    app, _ = build_app(config, account=ACCOUNT, app=new_app())
    assembly = app.synth()
    forwarder = assembly.get_stack_by_name("codio-marketplace-eu-events")
    assert forwarder.environment.region == "us-east-1"
    rules = [r for r in forwarder.template["Resources"].values() if r["Type"] == "AWS::Events::Rule"]
    assert len(rules) == 2
    for rule in rules:
        (target,) = rule["Properties"]["Targets"]
        assert ":events:eu-west-1:" in json.dumps(target["Arn"])
        assert rule["Properties"]["EventPattern"]["source"] == ["aws.agreement-marketplace"]
    listing_stack = assembly.get_stack_by_name("codio-marketplace-eu")
    assert "codio-marketplace-eu-events" in listing_stack.dependencies[0].id


# --- the seed's config as written -------------------------------------------------------------------------


def test_the_seeds_config_block_builds_both_listings_with_no_dimensions() -> None:
    from stacks.config import parse_config
    from tests.support.seed_config import SEED_CONFIG

    templates = synth(parse_config(json.loads(SEED_CONFIG)))
    assert sorted(templates) == [AI, DATA]
    for name, template in templates.items():
        resources = template.to_json()["Resources"]
        functions = [r for r in resources.values() if r["Type"] == "AWS::Lambda::Function"]
        variables = [
            f["Properties"]["Environment"]["Variables"] for f in functions if "Environment" in f["Properties"]
        ]
        listing_functions = [v for v in variables if "LISTING_PATH" in v]
        assert len(listing_functions) == 6 and all(v["DIMENSIONS"] == "" for v in listing_functions), name
        (dashboard,) = [r for r in resources.values() if r["Type"] == "AWS::CloudWatch::Dashboard"]
        assert "UsageBilled_" not in json.dumps(dashboard["Properties"]["DashboardBody"])
        assert "Registrations" in json.dumps(dashboard["Properties"]["DashboardBody"])
