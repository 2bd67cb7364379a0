"""The listing's REST API, reached only through the listing's CloudFront distribution.

Routes: `POST /marketplace/fulfillment` (AWS Marketplace sends the buyer here), `POST /api/register` and
`GET /api/registration` (the landing page). Page and API share one origin, so no CORS is opened.
"""

from __future__ import annotations

from aws_cdk import (
    Acknowledgment,
    RemovalPolicy,
    Validations,
    aws_apigateway as apigateway,
    aws_lambda,
    aws_logs,
)
from constructs import Construct

from stacks.constructs.listing_function import LOG_RETENTION
from stacks.nag import acknowledge
from stacks.naming import ListingNames

STAGE_NAME = "live"
# Steady-state and burst limits for the whole stage: far above what a listing's buyers produce, low
# enough that a flood cannot run up the seller's bill.
THROTTLE_RATE_PER_SECOND = 50
THROTTLE_BURST = 100

# Errors API Gateway itself answers (throttling, unknown route, bad request) use the API's JSON shape.
_GATEWAY_ERROR_TEMPLATE = '{"error": "$context.error.responseType", "message": $context.error.messageString}'


class ListingApi(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        names: ListingNames,
        fulfillment: aws_lambda.IFunction,
        registration: aws_lambda.IFunction,
        usage: aws_lambda.IFunction,
        retain: bool,
    ) -> None:
        super().__init__(scope, construct_id)
        self.access_logs = aws_logs.LogGroup(
            self,
            "AccessLogs",
            log_group_name=names.api_access_log_group,
            retention=LOG_RETENTION,
            removal_policy=RemovalPolicy.RETAIN if retain else RemovalPolicy.DESTROY,
        )
        self.rest_api = self._build_rest_api(names)
        self._build_gateway_responses()
        self._build_routes(fulfillment=fulfillment, registration=registration)
        self.usage_method = self._build_usage_route(usage)
        self._acknowledge_public_routes()
        acknowledge(
            self.rest_api,
            {
                "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                "AmazonAPIGatewayPushToCloudWatchLogs]": (
                    "API Gateway writes access and execution logs through the account-wide CloudWatch role; "
                    "this AWS-managed policy is the one AWS documents for that role."
                )
            },
        )

    def _build_rest_api(self, names: ListingNames) -> apigateway.RestApi:
        return apigateway.RestApi(
            self,
            "RestApi",
            rest_api_name=f"{names.stack}-api",
            description=f"Buyer onboarding API of {names.stack}",
            endpoint_types=[apigateway.EndpointType.REGIONAL],
            # Access logging needs the account's API Gateway CloudWatch role. Retained, because every
            # listing stack in the account and region shares that one setting.
            cloud_watch_role=True,
            cloud_watch_role_removal_policy=RemovalPolicy.RETAIN,
            deploy_options=apigateway.StageOptions(
                stage_name=STAGE_NAME,
                throttling_rate_limit=THROTTLE_RATE_PER_SECOND,
                throttling_burst_limit=THROTTLE_BURST,
                logging_level=apigateway.MethodLoggingLevel.ERROR,
                # Request and response bodies carry buyers' contact details and tokens: never logged.
                data_trace_enabled=False,
                metrics_enabled=True,
                tracing_enabled=True,
                access_log_destination=apigateway.LogGroupLogDestination(self.access_logs),
                access_log_format=apigateway.AccessLogFormat.json_with_standard_fields(
                    caller=False,
                    http_method=True,
                    ip=True,
                    protocol=True,
                    request_time=True,
                    resource_path=True,
                    response_length=True,
                    status=True,
                    user=False,
                ),
            ),
            disable_execute_api_endpoint=False,
        )

    def _build_gateway_responses(self) -> None:
        for construct_id, response_type in (
            ("Default4xx", apigateway.ResponseType.DEFAULT_4_XX),
            ("Default5xx", apigateway.ResponseType.DEFAULT_5_XX),
            ("BadBody", apigateway.ResponseType.BAD_REQUEST_BODY),
        ):
            self.rest_api.add_gateway_response(
                construct_id,
                type=response_type,
                response_headers={"Cache-Control": "'no-store'"},
                templates={"application/json": _GATEWAY_ERROR_TEMPLATE},
            )

    def _build_routes(self, *, fulfillment: aws_lambda.IFunction, registration: aws_lambda.IFunction) -> None:
        # The gateway checks the request's shape; the handlers check its meaning and say precisely what is
        # wrong. Every POST must say what it sends (the handlers answer 415 to a type they do not take).
        validator = self.rest_api.add_request_validator(
            "ShapeCheck", validate_request_parameters=True, validate_request_body=True
        )
        posted = {"method.request.header.Content-Type": True}
        registration_model = self.rest_api.add_model(
            "RegistrationRequest",
            content_type="application/json",
            model_name="RegistrationRequest",
            schema=apigateway.JsonSchema(
                schema=apigateway.JsonSchemaVersion.DRAFT4,
                type=apigateway.JsonSchemaType.OBJECT,
                max_properties=16,
                additional_properties=apigateway.JsonSchema(
                    type=apigateway.JsonSchemaType.STRING, max_length=2048
                ),
            ),
        )

        marketplace = self.rest_api.root.add_resource("marketplace")
        marketplace.add_resource("fulfillment").add_method(
            "POST",
            apigateway.LambdaIntegration(fulfillment),
            request_validator=validator,
            request_parameters=posted,
        )
        api = self.rest_api.root.add_resource("api")
        registration_integration = apigateway.LambdaIntegration(registration)
        api.add_resource("register").add_method(
            "POST",
            registration_integration,
            request_validator=validator,
            request_parameters=posted,
            request_models={"application/json": registration_model},
        )
        api.add_resource("registration").add_method(
            "GET",
            registration_integration,
            request_validator=validator,
            request_parameters={},
        )

    def _build_usage_route(self, usage: aws_lambda.IFunction) -> apigateway.Method:
        """The seller's product records usage here; only SigV4-signed callers with execute-api:Invoke may."""
        api = self.rest_api.root.get_resource("api")
        assert api is not None
        validator = self.rest_api.add_request_validator(
            "UsageShapeCheck", validate_request_parameters=True, validate_request_body=False
        )
        return api.add_resource("usage").add_method(
            "POST",
            apigateway.LambdaIntegration(usage),
            authorization_type=apigateway.AuthorizationType.IAM,
            request_validator=validator,
            request_parameters={"method.request.header.Content-Type": True},
        )

    @property
    def usage_method_arn(self) -> str:
        return self.rest_api.arn_for_execute_api("POST", "/api/usage", STAGE_NAME)

    def _acknowledge_public_routes(self) -> None:
        reason = (
            "The fulfillment URL is called by buyers' browsers redirected from AWS Marketplace, and the "
            "registration API by the landing page before the buyer has any account: neither can carry AWS "
            "or Cognito credentials. Each request is authorised by the Marketplace registration token or "
            "the pending-registration cookie it carries, checked by the handler."
        )
        for rule in ("AwsSolutions-APIG4", "AwsSolutions-COG4"):
            Validations.of(self.rest_api).acknowledge(Acknowledgment(id=rule, reason=reason))
        Validations.of(self.rest_api).acknowledge(
            Acknowledgment(
                id="AwsSolutions-APIG3",
                reason=(
                    "The API is reached through the listing's CloudFront distribution; the stage is "
                    "throttled, and a WAF web ACL is an optional cost left to the seller (see README)."
                ),
            )
        )

    @property
    def url(self) -> str:
        return self.rest_api.url
