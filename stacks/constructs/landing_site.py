"""The listing's landing page: a private S3 bucket behind one CloudFront distribution.

The same distribution forwards `/api/*` and `/marketplace/*` to the listing's API, so the page and its API
share an origin (no CORS) and the fulfillment URL is HTTPS on the listing's own domain.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jsii
from aws_cdk import (
    Acknowledgment,
    AspectPriority,
    Aspects,
    Aws,
    DefaultStackSynthesizer,
    Duration,
    IAspect,
    RemovalPolicy,
    Stack,
    Token,
    Validations,
    aws_apigateway as apigateway,
    aws_certificatemanager as acm,
    aws_cloudfront as cloudfront,
    aws_cloudfront_origins as origins,
    aws_iam as iam,
    aws_s3 as s3,
    aws_s3_deployment as s3_deployment,
)
from constructs import Construct, IConstruct

from stacks.bundling import PROJECT_ROOT
from stacks.config import CustomDomain
from stacks.constructs.listing_api import STAGE_NAME
from stacks.nag import acknowledge
from stacks.naming import ListingNames

SITE_ROOT = PROJECT_ROOT / "site"

# The page loads only its own script, styles and config; images may come from the seller's https logo URL.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' https: data:",
        "connect-src 'self'",
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    )
)
API_PATH_PATTERNS = ("/api/*", "/marketplace/*")


class LandingSite(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        names: ListingNames,
        api: apigateway.RestApi,
        origin_headers: Mapping[str, str],
        page_config: dict[str, Any],
        brand_stylesheet: str,
        custom_domain: CustomDomain | None,
        retain: bool,
    ) -> None:
        super().__init__(scope, construct_id)
        removal = RemovalPolicy.RETAIN if retain else RemovalPolicy.DESTROY
        self.log_bucket = self._build_log_bucket(removal)
        self.bucket = self._build_site_bucket(names, removal)
        self.headers_policy = self._build_headers_policy()
        self.distribution = self._build_distribution(names, api, origin_headers, custom_domain)
        self._deploy_site(page_config, brand_stylesheet, removal)

    def _build_log_bucket(self, removal: RemovalPolicy) -> s3.Bucket:
        bucket = s3.Bucket(
            self,
            "AccessLogs",
            # CloudFront standard logs are delivered with ACLs, so this bucket (only) keeps them enabled.
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_PREFERRED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            versioned=True,
            removal_policy=removal,
            lifecycle_rules=[
                s3.LifecycleRule(
                    expiration=Duration.days(365), noncurrent_version_expiration=Duration.days(30)
                )
            ],
        )
        Validations.of(bucket).acknowledge(
            Acknowledgment(
                id="AwsSolutions-S1",
                reason="This is the access-log bucket itself; logging it to itself would loop.",
            )
        )
        return bucket

    def _build_site_bucket(self, names: ListingNames, removal: RemovalPolicy) -> s3.Bucket:
        return s3.Bucket(
            self,
            "Pages",
            bucket_name=names.site_bucket(Aws.ACCOUNT_ID),
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            versioned=True,
            removal_policy=removal,
            server_access_logs_bucket=self.log_bucket,
            server_access_logs_prefix="s3/",
            lifecycle_rules=[s3.LifecycleRule(noncurrent_version_expiration=Duration.days(30))],
        )

    def _build_headers_policy(self) -> cloudfront.ResponseHeadersPolicy:
        return cloudfront.ResponseHeadersPolicy(
            self,
            "SecurityHeaders",
            comment="Strict CSP, HSTS, nosniff, no framing, no referrer to other sites",
            security_headers_behavior=cloudfront.ResponseSecurityHeadersBehavior(
                content_security_policy=cloudfront.ResponseHeadersContentSecurityPolicy(
                    content_security_policy=CONTENT_SECURITY_POLICY, override=True
                ),
                strict_transport_security=cloudfront.ResponseHeadersStrictTransportSecurity(
                    access_control_max_age=Duration.days(730),
                    include_subdomains=True,
                    preload=True,
                    override=True,
                ),
                content_type_options=cloudfront.ResponseHeadersContentTypeOptions(override=True),
                frame_options=cloudfront.ResponseHeadersFrameOptions(
                    frame_option=cloudfront.HeadersFrameOption.DENY, override=True
                ),
                referrer_policy=cloudfront.ResponseHeadersReferrerPolicy(
                    referrer_policy=cloudfront.HeadersReferrerPolicy.SAME_ORIGIN, override=True
                ),
            ),
            custom_headers_behavior=cloudfront.ResponseCustomHeadersBehavior(
                custom_headers=[
                    cloudfront.ResponseCustomHeader(
                        header="Permissions-Policy",
                        value="camera=(), microphone=(), geolocation=(), payment=()",
                        override=True,
                    ),
                    cloudfront.ResponseCustomHeader(
                        header="Cross-Origin-Opener-Policy", value="same-origin", override=True
                    ),
                ]
            ),
            remove_headers=["Server", "X-Powered-By"],
        )

    def _build_distribution(
        self,
        names: ListingNames,
        api: apigateway.RestApi,
        origin_headers: Mapping[str, str],
        custom_domain: CustomDomain | None,
    ) -> cloudfront.Distribution:
        api_behavior = cloudfront.BehaviorOptions(
            # The origin headers prove to API Gateway that a request came through this distribution; a
            # viewer's header of the same name is overwritten.
            origin=_api_origin(api, origin_headers),
            viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
            allowed_methods=cloudfront.AllowedMethods.ALLOW_ALL,
            cache_policy=cloudfront.CachePolicy.CACHING_DISABLED,
            # Forward cookies, query strings and headers, but not Host: API Gateway routes on its own.
            origin_request_policy=cloudfront.OriginRequestPolicy.ALL_VIEWER_EXCEPT_HOST_HEADER,
            response_headers_policy=self.headers_policy,
        )
        certificate = None
        domain_names = None
        if custom_domain is not None:
            certificate = acm.Certificate.from_certificate_arn(
                self, "Certificate", custom_domain.certificate_arn
            )
            domain_names = [custom_domain.domain_name]
        distribution = cloudfront.Distribution(
            self,
            "Distribution",
            comment=f"Landing page and fulfillment URL of {names.stack}",
            default_root_object="index.html",
            default_behavior=cloudfront.BehaviorOptions(
                origin=origins.S3BucketOrigin.with_origin_access_control(self.bucket),
                viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
                allowed_methods=cloudfront.AllowedMethods.ALLOW_GET_HEAD_OPTIONS,
                cache_policy=cloudfront.CachePolicy.CACHING_OPTIMIZED,
                response_headers_policy=self.headers_policy,
                compress=True,
            ),
            additional_behaviors=dict.fromkeys(API_PATH_PATTERNS, api_behavior),
            certificate=certificate,
            domain_names=domain_names,
            # Only a custom certificate lets a distribution choose its TLS policy (see CFR4 below).
            minimum_protocol_version=(
                cloudfront.SecurityPolicyProtocol.TLS_V1_2_2021 if custom_domain is not None else None
            ),
            http_version=cloudfront.HttpVersion.HTTP2_AND_3,
            price_class=cloudfront.PriceClass.PRICE_CLASS_100,
            enable_logging=True,
            log_bucket=self.log_bucket,
            log_file_prefix="cloudfront/",
        )
        Validations.of(distribution).acknowledge(
            Acknowledgment(
                id="AwsSolutions-CFR1",
                reason="Marketplace buyers may be anywhere AWS Marketplace sells; no country is excluded.",
            ),
            Acknowledgment(
                id="AwsSolutions-CFR2",
                reason=(
                    "The page is static and the API is throttled per stage; a WAF web ACL costs every "
                    "listing a monthly fee and is left to the seller (see README, 'Hardening further')."
                ),
            ),
        )
        if custom_domain is None:
            Validations.of(distribution).acknowledge(
                Acknowledgment(
                    id="AwsSolutions-CFR4",
                    reason=(
                        "Without a custom domain the distribution serves the *.cloudfront.net certificate, "
                        "whose security policy CloudFront fixes; set the listing's customDomain to enforce "
                        "TLSv1.2_2021."
                    ),
                )
            )
        return distribution

    def _deploy_site(
        self, page_config: dict[str, Any], brand_stylesheet: str, removal: RemovalPolicy
    ) -> None:
        deployment = s3_deployment.BucketDeployment(
            self,
            "Deployment",
            destination_bucket=self.bucket,
            sources=[
                s3_deployment.Source.asset(str(SITE_ROOT)),
                s3_deployment.Source.json_data("config.json", page_config),
                # The accent colour, for the pages the functions answer with (no script runs there).
                s3_deployment.Source.data("brand.css", brand_stylesheet),
            ],
            distribution=self.distribution,
            distribution_paths=["/index.html", "/config.json", "/app.js", "/styles.css", "/brand.css"],
            memory_limit=512,
            prune=True,
        )
        _scope_invalidation(deployment, self.distribution)
        # The copy runs in a Lambda function that CDK provides and configures itself (one per stack).
        provider = acknowledge_cdk_copy_function(
            Stack.of(self),
            self.bucket,
            function=_CDK_PROVIDER,
            dead_letters=(
                "CloudFormation invokes it asynchronously and it answers CloudFormation itself: a failed "
                "copy fails the deployment, and so does a crash without an answer, when the custom "
                "resource times out. A dead-letter queue would keep a request whose response URL expired."
            ),
            copy=(
                "CDK's deployment function copies the page from the CDK asset bucket into this listing's "
                "page bucket and deletes stale files (prune): CDK scopes these object wildcards to those two "
                "buckets."
            ),
        )
        # CDK retains the log group it makes for that function; like every other, it follows retainResources.
        provider.node.find_child("LogGroup").apply_removal_policy(removal)  # type: ignore[attr-defined]


def acknowledge_cdk_copy_function(
    stack: Stack, destination: s3.IBucket, *, function: str, dead_letters: str, copy: str
) -> IConstruct:
    """cdk-nag's findings on the function CDK adds to a stack (one per stack) for its BucketDeployments,
    each acknowledged with its reason: `function` for what aws-cdk-lib sets itself, `dead_letters` for its
    lack of a dead-letter queue, `copy` for the object wildcards on the CDK asset bucket and `destination`.
    Returns the function's provider construct."""
    provider = next(
        child for child in stack.node.children if child.node.id.startswith("Custom::CDKBucketDeployment")
    )
    account = "<AWS::AccountId>" if Token.is_unresolved(stack.account) else stack.account
    region = "<AWS::Region>" if Token.is_unresolved(stack.region) else stack.region
    bucket_id = stack.resolve(stack.get_logical_id(destination.node.default_child))  # type: ignore[arg-type]
    acknowledge(
        provider,
        {
            "AwsSolutions-L1": function,
            "Serverless-LambdaLatestVersion": function,
            "Serverless-LambdaTracing": function,
            "Serverless-LambdaDLQ": dead_letters,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
            "AWSLambdaBasicExecutionRole]": (
                "CDK's deployment function uses AWSLambdaBasicExecutionRole only to write its own logs."
            ),
            **dict.fromkeys(
                [f"AwsSolutions-IAM5[Action::{action}]" for action in CDK_COPY_ACTIONS]
                + [
                    f"AwsSolutions-IAM5[Resource::<{bucket_id}.Arn>/*]",
                    "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::"
                    f"cdk-{DefaultStackSynthesizer.DEFAULT_QUALIFIER}-assets-{account}-{region}/*]",
                ],
                copy,
            ),
        },
    )
    return provider


INVALIDATION_ACTIONS = frozenset({"cloudfront:CreateInvalidation", "cloudfront:GetInvalidation"})


def _scope_invalidation(
    deployment: s3_deployment.BucketDeployment, distribution: cloudfront.IDistribution
) -> None:
    """Narrow the deployment function's invalidation permission from `*` to this listing's distribution.

    BucketDeployment grants cloudfront:CreateInvalidation and GetInvalidation on `*`, though both accept a
    distribution ARN, and offers no option to scope them. An aspect rewrites its role's policy once the
    tree is complete, before the template is written and cdk-nag reads it: the statement holding only those
    two actions on `*` gets the distribution's ARN instead. Anything else found there is an error, not a
    silent widening.
    """
    policy = deployment.handler_role.node.find_child("DefaultPolicy")
    Aspects.of(policy).add(
        _InvalidationScoped(distribution.distribution_arn), priority=AspectPriority.MUTATING
    )


@jsii.implements(IAspect)
class _InvalidationScoped:
    def __init__(self, distribution_arn: str) -> None:
        self._distribution_arn = distribution_arn

    def visit(self, node: IConstruct) -> None:
        if not isinstance(node, iam.CfnPolicy):
            return
        stack = Stack.of(node)
        document = stack.resolve(node.policy_document)
        scoped = 0
        for statement in document["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            if not INVALIDATION_ACTIONS & set(actions):
                continue
            if set(actions) != INVALIDATION_ACTIONS or statement.get("Resource") not in ("*", None):
                raise ValueError(
                    "BucketDeployment's invalidation statement changed shape (aws-cdk-lib upgrade?): "
                    f"{statement}; review _scope_invalidation"
                )
            statement["Resource"] = stack.resolve(self._distribution_arn)
            scoped += 1
        if scoped != 1:
            raise ValueError(
                f"expected one invalidation statement in BucketDeployment's policy, found {scoped}"
            )
        node.policy_document = document


def _api_origin(api: apigateway.RestApi, custom_headers: Mapping[str, str]) -> origins.HttpOrigin:
    """What `RestApiOrigin(api)` is, named by the API's id and stage name rather than by `api.url`: that URL
    refers to the stage, so the registration function (which the stage's methods call) could not be told
    the distribution's domain (its SITE_ORIGINS) without a circular dependency."""
    stack = Stack.of(api)
    return origins.HttpOrigin(
        f"{api.rest_api_id}.execute-api.{stack.region}.{stack.url_suffix}",
        origin_path=f"/{STAGE_NAME}",
        protocol_policy=cloudfront.OriginProtocolPolicy.HTTPS_ONLY,
        origin_ssl_protocols=[cloudfront.OriginSslPolicy.TLS_V1_2],
        custom_headers=dict(custom_headers),
    )


CDK_COPY_ACTIONS = ("s3:Abort*", "s3:DeleteObject*", "s3:GetBucket*", "s3:GetObject*", "s3:List*")
_CDK_PROVIDER = (
    "CDK's own BucketDeployment function: its runtime, tracing and packaging are set by aws-cdk-lib and "
    "move with it; it runs only during deployments to copy the page into the bucket."
)
