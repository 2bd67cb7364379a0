"""Reviewed deploys: `--plan` creates CloudFormation change sets, `--execute-plan` runs them, `--discard-plan`
drops them.

The change sets are made here, with boto3, from the synthesized cloud assembly (cdk.out), doing what
`cdk deploy` does before it executes one: publish each stack's file assets to the bootstrap bucket (as the
manifest's publishing role), then create the change set with the published template (as the manifest's
deploy role, CloudFormation acting as its execution role). So the plan a seller reviews is CloudFormation's
own answer, and what runs later is exactly what was reviewed: the plan file names the change sets, the
account and the hash of the config they were made from, and `--execute-plan` refuses when any of them no
longer holds.
"""

from __future__ import annotations

import hashlib
import io
import json
import stat
import time
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from operations.target import (
    NO_CREDENTIALS,
    CredentialsError,
    OperationError,
    aws_error,
    say,
)
from stacks.config import MarketplaceConfig

EXIT_NOT_BOOTSTRAPPED = 4  # the README's exit-code table
EXIT_DEPLOY_FAILED = 6  # CloudFormation rejected the change
CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"]
PLAN_VERSION = 1
POLL_SECONDS = 2.0  # between two looks at a change set or a stack in progress
CREATE_TIMEOUT_SECONDS = 600.0  # CloudFormation takes seconds to make a change set; minutes means it is stuck
# An assumed role's credentials last an hour: a client made later than this before they end assumes it again
# (one stack's CloudFront distribution can take a quarter of an hour).
ROLE_MARGIN = timedelta(minutes=30)
NO_CHANGES = ("didn't contain changes", "No updates are to be performed")

# Resource types whose every change touches who may do what: IAM itself, resource policies and grants.
SECURITY_TYPES = frozenset(
    {
        "AWS::ApiGateway::Authorizer",
        "AWS::EC2::SecurityGroup",
        "AWS::EC2::SecurityGroupEgress",
        "AWS::EC2::SecurityGroupIngress",
        "AWS::ECR::RepositoryPolicy",
        "AWS::Events::EventBusPolicy",
        "AWS::KMS::Key",
        "AWS::Lambda::LayerVersionPermission",
        "AWS::Lambda::Permission",
        "AWS::Lambda::Url",
        "AWS::Logs::ResourcePolicy",
        "AWS::S3::BucketPolicy",
        "AWS::SecretsManager::ResourcePolicy",
        "AWS::SNS::TopicPolicy",
        "AWS::SQS::QueuePolicy",
    }
)
# Properties that are a policy, on any resource type (a table's ResourcePolicy, an API's Policy, ...).
SECURITY_PROPERTIES = frozenset(
    {
        "AssumeRolePolicyDocument",
        "KeyPolicy",
        "ManagedPolicyArns",
        "PermissionsBoundary",
        "Policies",
        "Policy",
        "PolicyDocument",
        "ResourcePolicy",
    }
)
# Resource types that hold a seller's data: removing or replacing one loses it, or leaves it orphaned.
DATA_TYPES = frozenset({"AWS::DynamoDB::GlobalTable", "AWS::DynamoDB::Table", "AWS::S3::Bucket"})


class PlanError(OperationError):
    """The plan cannot be made or run as it is; the message says why and what to do. Nothing changed."""


class WrongAccount(CredentialsError):
    """Credentials of another account than the plan's or the environment's (exit 3, like no credentials)."""


class NotBootstrapped(OperationError):
    """The account has no CDK bootstrap bucket in a region a stack goes to."""

    exit_code = EXIT_NOT_BOOTSTRAPPED


class StackRejected(OperationError):
    """CloudFormation refused a change set or a stack ended failed."""

    exit_code = EXIT_DEPLOY_FAILED


@dataclass(frozen=True)
class AssemblyStack:
    """One stack of the cloud assembly, its placeholders (`${AWS::AccountId}` ...) not yet substituted."""

    name: str
    region: str
    account: str | None  # None when synthesized without one (`unknown-account`)
    template_file: Path
    assets_file: Path | None
    template_url: str | None  # s3://bucket/key of the published template
    assume_role_arn: str | None
    assume_role_external_id: str | None
    execution_role_arn: str | None
    termination_protection: bool
    tags: dict[str, str]
    dependencies: tuple[str, ...]


def read_assembly(outdir: Path, stack_names: Sequence[str]) -> list[AssemblyStack]:
    """The named stacks and the stacks they depend on (a listing's `-events` forwarder), dependencies
    first, as the cloud assembly's manifest.json describes them."""
    manifest_file = outdir / "manifest.json"
    try:
        manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise PlanError(f"{manifest_file}: no readable cloud assembly ({error}); synthesize first") from None
    artifacts: dict[str, Any] = manifest.get("artifacts", {})
    stacks = {
        name: artifact
        for name, artifact in artifacts.items()
        if artifact.get("type") == "aws:cloudformation:stack"
    }
    missing = [name for name in stack_names if name not in stacks]
    if missing:
        raise PlanError(f"{manifest_file}: the cloud assembly has no stack {', '.join(missing)}")
    ordered: list[str] = []

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in ordered:
            return
        if name in path:
            raise PlanError(f"{manifest_file}: stacks depend on each other in a cycle: {' -> '.join(path)}")
        for dependency in stacks[name].get("dependencies", []):
            if dependency in stacks:
                visit(dependency, (*path, name))
        ordered.append(name)

    for name in stack_names:
        visit(name, ())
    return [_stack(outdir, name, stacks[name], artifacts) for name in ordered]


def _stack(outdir: Path, name: str, artifact: dict[str, Any], artifacts: dict[str, Any]) -> AssemblyStack:
    environment = str(artifact.get("environment", ""))
    if not environment.startswith("aws://") or environment.count("/") != 3:
        raise PlanError(f"{outdir}/manifest.json: stack {name} has no environment (aws://account/region)")
    account, region = environment[len("aws://") :].split("/")
    properties: dict[str, Any] = artifact.get("properties", {})
    dependencies = [artifacts[name] for name in artifact.get("dependencies", []) if name in artifacts]
    assets = [
        outdir / dependency["properties"]["file"]
        for dependency in dependencies
        if dependency.get("type") == "cdk:asset-manifest"
    ]
    return AssemblyStack(
        name=name,
        region=region,
        account=None if account.startswith("unknown-") else account,
        template_file=outdir / properties["templateFile"],
        assets_file=assets[0] if assets else None,
        template_url=properties.get("stackTemplateAssetObjectUrl"),
        assume_role_arn=properties.get("assumeRoleArn"),
        assume_role_external_id=properties.get("assumeRoleExternalId"),
        execution_role_arn=properties.get("cloudFormationExecutionRoleArn"),
        termination_protection=bool(properties.get("terminationProtection", False)),
        tags={str(key): str(value) for key, value in properties.get("tags", {}).items()},
        dependencies=tuple(
            dependency
            for dependency in artifact.get("dependencies", [])
            if artifacts.get(dependency, {}).get("type") == "aws:cloudformation:stack"
        ),
    )


def config_hash(config_path: Path) -> str:
    return hashlib.sha256(config_path.read_bytes()).hexdigest()


# --- credentials -------------------------------------------------------------------------------------------


@dataclass
class Credentials:
    """The environment's credentials, and the sessions of the roles the manifest names, assumed once each."""

    region: str
    account: str = ""
    partition: str = "aws"
    _base: boto3.Session | None = None
    _roles: dict[str, tuple[boto3.Session, datetime | None]] = field(default_factory=dict)

    @classmethod
    def check(cls, region: str, expected: dict[str, str]) -> Credentials:
        """The caller's account, refused (exit 3) unless it is each account in `expected` (what: account)."""
        base = boto3.Session(region_name=region)
        if base.get_credentials() is None:
            raise CredentialsError(NO_CREDENTIALS)
        try:
            identity = base.client("sts").get_caller_identity()
        except (BotoCoreError, ClientError) as error:
            raise aws_error(error) from None
        account = str(identity["Account"])
        for what, wanted in expected.items():
            if wanted and wanted != account:
                raise WrongAccount(
                    f"the AWS credentials in the environment are for account {account}, but {what} is "
                    f"account {wanted}. Nothing was changed. Use credentials of account {wanted} (e.g. "
                    "AWS_PROFILE)."
                )
        return cls(region, account, str(identity["Arn"]).split(":")[1], base)

    def substitute(self, text: str, region: str) -> str:
        return (
            text.replace("${AWS::AccountId}", self.account)
            .replace("${AWS::Region}", region)
            .replace("${AWS::Partition}", self.partition)
        )

    def session(self, role_arn: str | None, region: str, external_id: str | None = None) -> boto3.Session:
        """The session that acts as `role_arn` (as cdk does: the current credentials when they may not assume
        it but are for the role's own account, with a warning)."""
        assert self._base is not None
        if not role_arn:
            return self._base
        role_arn = self.substitute(role_arn, region)
        _, expires = self._roles.get(role_arn, (None, None))
        if role_arn not in self._roles or (expires and expires - datetime.now(UTC) < ROLE_MARGIN):
            request: dict[str, Any] = {"RoleArn": role_arn, "RoleSessionName": "deploy-marketplace-plan"}
            if external_id:
                request["ExternalId"] = external_id
            try:
                assumed = self._base.client("sts").assume_role(**request)["Credentials"]
                session = boto3.Session(
                    aws_access_key_id=assumed["AccessKeyId"],
                    aws_secret_access_key=assumed["SecretAccessKey"],
                    aws_session_token=assumed["SessionToken"],
                    region_name=region,
                )
                self._roles[role_arn] = (session, assumed["Expiration"])
            except ClientError as error:
                if role_arn.split(":")[4] != self.account:
                    raise PlanError(
                        f"could not assume {role_arn} ({error.response.get('Error', {}).get('Code', '')}); "
                        "bootstrap that account with --trust for this one, or use its credentials"
                    ) from None
                say(f"Could not assume {role_arn}; using the current credentials (same account)")
                self._roles[role_arn] = (self._base, None)
        return self._roles[role_arn][0]

    def cloudformation(self, stack: PlannedStack | AssemblyStack) -> Any:
        role = stack.assume_role_arn
        return self.session(role, stack.region).client("cloudformation", region_name=stack.region)


# --- assets ------------------------------------------------------------------------------------------------


def zip_directory(directory: Path) -> bytes:
    """A directory as a zip that depends only on its files' names, contents and executable bits (no dates,
    no owners), so the same directory gives the same object every time."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(path for path in directory.rglob("*") if path.is_file()):
            entry = zipfile.ZipInfo(file.relative_to(directory).as_posix(), date_time=(1980, 1, 1, 0, 0, 0))
            executable = file.stat().st_mode & stat.S_IXUSR
            entry.external_attr = ((0o100755 if executable else 0o100644) & 0xFFFF) << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(entry, file.read_bytes())
    return buffer.getvalue()


def publish_assets(stack: AssemblyStack, credentials: Credentials) -> None:
    """Upload the stack's file assets (its template among them) where the manifest says, skipping objects
    already there (their keys are content hashes)."""
    if stack.assets_file is None:
        return
    manifest = json.loads(stack.assets_file.read_text(encoding="utf-8"))
    if manifest.get("dockerImages"):
        raise PlanError(f"{stack.assets_file}: container image assets cannot be planned here; use a deploy")
    published = skipped = 0
    for asset_id, asset in manifest.get("files", {}).items():
        source = asset["source"]
        if "path" not in source:
            raise PlanError(f"{stack.assets_file}: asset {asset_id} is built by a command; use a deploy")
        path = Path(source["path"])
        path = path if path.is_absolute() else stack.assets_file.parent / path
        body: bytes | None = None
        for destination in asset["destinations"].values():
            region = credentials.substitute(destination.get("region", stack.region), stack.region)
            bucket = credentials.substitute(destination["bucketName"], region)
            key = credentials.substitute(destination["objectKey"], region)
            session = credentials.session(
                destination.get("assumeRoleArn"), region, destination.get("assumeRoleExternalId")
            )
            s3 = session.client("s3", region_name=region)
            if _exists(s3, bucket, key, credentials.account, region):
                skipped += 1
                continue
            if body is None:
                body = (
                    zip_directory(path)
                    if source.get("packaging") == "zip" and path.is_dir()
                    else path.read_bytes()
                )
            try:
                s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=_content_type(key))
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") == "NoSuchBucket":
                    raise _not_bootstrapped(bucket, credentials.account, region) from None
                raise aws_error(error) from None
            published += 1
    say(f"{stack.name}: {published} asset(s) published, {skipped} already there")


def _exists(s3: Any, bucket: str, key: str, account: str, region: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code")
        if code == "NoSuchBucket":
            raise _not_bootstrapped(bucket, account, region) from None
        if code in ("404", "NoSuchKey", "NotFound"):  # a HEAD's 404 has no body: put_object tells the bucket
            return False
        raise aws_error(error) from None
    return True


def _not_bootstrapped(bucket: str, account: str, region: str) -> NotBootstrapped:
    return NotBootstrapped(
        f"the bootstrap bucket {bucket} does not exist: bootstrap the account once with "
        f"npx cdk bootstrap aws://{account}/{region}, then run --plan again"
    )


def _content_type(key: str) -> str:
    return {"json": "application/json", "zip": "application/zip"}.get(
        key.rsplit(".", 1)[-1], "binary/octet-stream"
    )


def template_url(stack: AssemblyStack, credentials: Credentials) -> str:
    if not stack.template_url:
        raise PlanError(f"{stack.name}: the manifest names no published template (synthesize with CDK v2)")
    bucket, key = credentials.substitute(stack.template_url, stack.region)[len("s3://") :].split("/", 1)
    suffix = "amazonaws.com.cn" if credentials.partition == "aws-cn" else "amazonaws.com"
    return f"https://s3.{stack.region}.{suffix}/{bucket}/{key}"


# --- the review --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    action: str
    logical_id: str
    resource_type: str
    replacement: str
    security: bool
    data: str  # why the change loses or orphans data, or ""

    def line(self) -> str:
        sign = {"Add": "+", "Remove": "-", "Modify": "~", "Import": "<", "Dynamic": "?"}.get(self.action, "?")
        text = f"  {sign} {self.action:<7} {self.logical_id}  {self.resource_type}"
        if self.replacement and self.replacement != "False":
            text += f"  replacement: {self.replacement}"
        if self.security:
            text += "  [IAM/security]"
        if self.data:
            text += f"  [DATA: {self.data}]"
        return text


def review(description: dict[str, Any], deployed: dict[str, Any]) -> list[Change]:
    """Each resource change of a described change set, marked. `deployed`: the stack's current template
    (its DeletionPolicy says whether a removed table or bucket stays in the account)."""
    changes = []
    for item in description.get("Changes", []):
        change = item.get("ResourceChange", {})
        action = str(change.get("Action", "?"))
        logical_id = str(change.get("LogicalResourceId", "?"))
        resource_type = str(change.get("ResourceType", "?"))
        replacement = str(change.get("Replacement", ""))
        properties = {
            str(detail.get("Target", {}).get("Name", ""))
            for detail in change.get("Details", [])
            if detail.get("Target", {}).get("Attribute") == "Properties"
        }
        security = (
            resource_type.startswith("AWS::IAM::")
            or resource_type in SECURITY_TYPES
            or bool(properties & SECURITY_PROPERTIES)
        )
        data = ""
        if resource_type in DATA_TYPES and (
            action == "Remove" or (action == "Modify" and replacement == "True")
        ):
            policy = deployed.get("Resources", {}).get(logical_id, {}).get("DeletionPolicy", "Delete")
            kept = policy in ("Retain", "RetainExceptOnCreate", "Snapshot")
            what = "removed from the stack" if action == "Remove" else "replaced by a new, empty one"
            fate = (
                "the old one stays in the account, unmanaged"
                if kept
                else "the old one is DELETED with its data"
            )
            data = f"{what}; {fate}"
        changes.append(Change(action, logical_id, resource_type, replacement, security, data))
    return changes


# --- the plan file -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedStack:
    stack: str
    region: str
    account: str
    change_set: str | None  # its ARN; None when the stack had no changes
    change_set_type: str
    assume_role_arn: str | None
    termination_protection: bool
    security: tuple[str, ...]  # the review's lines of IAM/security changes
    data: tuple[str, ...]  # the review's lines of changes that lose or orphan data

    def to_json(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "region": self.region,
            "account": self.account,
            "changeSet": self.change_set,
            "changeSetType": self.change_set_type,
            "assumeRoleArn": self.assume_role_arn,
            "terminationProtection": self.termination_protection,
            "securityChanges": list(self.security),
            "dataChanges": list(self.data),
        }

    @classmethod
    def from_json(cls, item: dict[str, Any]) -> PlannedStack:
        return cls(
            stack=str(item["stack"]),
            region=str(item["region"]),
            account=str(item["account"]),
            change_set=item["changeSet"],
            change_set_type=str(item["changeSetType"]),
            assume_role_arn=item.get("assumeRoleArn"),
            termination_protection=bool(item.get("terminationProtection", False)),
            security=tuple(item.get("securityChanges", [])),
            data=tuple(item.get("dataChanges", [])),
        )


@dataclass(frozen=True)
class Plan:
    environment: str
    account: str
    region: str
    config_file: str
    config_sha256: str
    listings: tuple[str, ...]
    stacks: tuple[PlannedStack, ...]
    created: str

    def write(self, file: Path) -> None:
        data = {
            "version": PLAN_VERSION,
            "created": self.created,
            "environment": self.environment,
            "account": self.account,
            "region": self.region,
            "config": {"file": self.config_file, "sha256": self.config_sha256},
            "listings": list(self.listings),
            "stacks": [stack.to_json() for stack in self.stacks],
        }
        temporary = file.with_name(f".{file.name}.tmp")
        temporary.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        temporary.replace(file)

    @classmethod
    def read(cls, file: Path) -> Plan:
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            waiting = sorted(other.name for other in file.parent.glob("deploy-plan-*.json"))
            raise PlanError(
                f"no plan to run: {file.name} does not exist; make one with --plan"
                + (
                    f" (other environments' plans: {', '.join(waiting)}; pick one with --environment)"
                    if waiting
                    else ""
                )
            ) from None
        except (OSError, ValueError) as error:
            raise PlanError(f"{file}: not a readable plan ({error}); make a new one with --plan") from None
        try:
            if data.get("version") != PLAN_VERSION:
                raise ValueError(f"version {data.get('version')!r}, not {PLAN_VERSION}")
            return cls(
                environment=str(data["environment"]),
                account=str(data["account"]),
                region=str(data["region"]),
                config_file=str(data["config"]["file"]),
                config_sha256=str(data["config"]["sha256"]),
                listings=tuple(data["listings"]),
                stacks=tuple(PlannedStack.from_json(item) for item in data["stacks"]),
                created=str(data["created"]),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise PlanError(
                f"{file}: not a plan this command wrote ({error}); make a new one with --plan"
            ) from None


# --- --plan ------------------------------------------------------------------------------------------------


def create_plan(
    config: MarketplaceConfig,
    config_path: Path,
    listing_paths: Sequence[str],
    stack_names: Sequence[str],
    outdir: Path,
    plan_file: Path,
) -> Plan:
    """Publish the assets and create one change set per stack (none executed), print the review, write
    the plan file. On any failure the change sets made so far are deleted again."""
    settings = config.deployment_settings
    stacks = read_assembly(outdir, stack_names)
    expected = {f"environment {settings.environment}'s deploymentSettings.account": settings.account or ""}
    expected |= {f"stack {stack.name}'s synthesized account": stack.account or "" for stack in stacks}
    credentials = Credentials.check(settings.region, expected)
    _replace_previous(plan_file, credentials)
    name = "marketplace-plan-" + datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    planned: list[PlannedStack] = []
    try:
        for stack in stacks:
            publish_assets(stack, credentials)
            planned.append(_create(stack, credentials, name, settings.environment))
    except BaseException:
        if any(item.change_set for item in planned):
            say("Deleting the change sets this plan had made")
            _discard(planned, credentials)
        raise
    plan = Plan(
        environment=settings.environment,
        account=credentials.account,
        region=settings.region,
        config_file=str(config_path),
        config_sha256=config_hash(config_path),
        listings=tuple(listing_paths),
        stacks=tuple(planned),
        created=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    plan.write(plan_file)
    changed = [item for item in planned if item.change_set]
    security = sum(len(item.security) for item in planned)
    say(
        f"Plan written to {plan_file.name}: {len(changed)} change set(s) for environment "
        f"{settings.environment}, account {credentials.account}"
        + (f"; {security} IAM/security change(s)" if security else "")
        + f". Run it with --execute-plan --environment {settings.environment} (add --require-approval to "
        "be asked about IAM/security changes), or drop it with --discard-plan --environment "
        f"{settings.environment}"
    )
    return plan


def _replace_previous(plan_file: Path, credentials: Credentials) -> None:
    """A new plan replaces the last one: its change sets are deleted rather than left behind unnamed."""
    if not plan_file.exists():
        return
    try:
        previous = Plan.read(plan_file)
    except PlanError:
        return
    if previous.account != credentials.account:
        say(f"The previous plan is for account {previous.account}; its change sets are left as they are")
        return
    say(f"Replacing the previous plan ({previous.created}): deleting its change sets")
    _discard(list(previous.stacks), credentials)


def _create(stack: AssemblyStack, credentials: Credentials, name: str, environment: str) -> PlannedStack:
    cloudformation = credentials.cloudformation(stack)
    deployed_status, deployed = _deployed(cloudformation, stack.name)
    if (
        deployed_status is not None
        and deployed_status.endswith("_IN_PROGRESS")
        and deployed_status != "REVIEW_IN_PROGRESS"
    ):
        raise PlanError(f"{stack.name} is {deployed_status}: wait until it has ended, then run --plan again")
    if deployed_status == "ROLLBACK_COMPLETE":
        raise PlanError(
            f"{stack.name} is ROLLBACK_COMPLETE (its first deploy failed) and cannot be updated: delete it "
            f"with aws cloudformation delete-stack --stack-name {stack.name} --region {stack.region}, then "
            "plan again"
        )
    change_set_type = "CREATE" if deployed_status in (None, "REVIEW_IN_PROGRESS") else "UPDATE"
    request: dict[str, Any] = {
        "StackName": stack.name,
        "ChangeSetName": name,
        "ChangeSetType": change_set_type,
        "TemplateURL": template_url(stack, credentials),
        "Capabilities": CAPABILITIES,
        "Tags": [{"Key": key, "Value": value} for key, value in sorted(stack.tags.items())],
        "Description": f"deploy-marketplace.sh --plan, environment {environment}",
    }
    if stack.execution_role_arn:
        request["RoleARN"] = credentials.substitute(stack.execution_role_arn, stack.region)
    try:
        change_set_id = str(cloudformation.create_change_set(**request)["Id"])
    except ClientError as error:
        raise StackRejected(
            f"{stack.name}: CloudFormation refused the change set: {_message(error)}"
        ) from None
    planned = PlannedStack(
        stack.name,
        stack.region,
        credentials.account,
        change_set_id,
        change_set_type,
        stack.assume_role_arn,
        stack.termination_protection,
        (),
        (),
    )
    description = _wait_created(cloudformation, stack.name, change_set_id)
    if description["Status"] == "FAILED":
        reason = str(description.get("StatusReason", ""))
        if any(words in reason for words in NO_CHANGES):
            cloudformation.delete_change_set(ChangeSetName=change_set_id)
            print(f"\n{stack.name} ({stack.region}): no changes")
            return replace(planned, change_set=None, change_set_type="NONE")
        _discard([planned], credentials)
        raise StackRejected(f"{stack.name}: CloudFormation could not make the change set: {reason}")
    changes = review(description, deployed)
    print(f"\n{stack.name} ({stack.region}, {change_set_type}): {len(changes)} change(s), change set {name}")
    for change in changes:
        print(change.line())
    return replace(
        planned,
        security=tuple(change.line().strip() for change in changes if change.security),
        data=tuple(change.line().strip() for change in changes if change.data),
    )


def _deployed(cloudformation: Any, stack_name: str) -> tuple[str | None, dict[str, Any]]:
    """The stack's status and its current template; (None, {}) when it does not exist."""
    try:
        (found,) = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as error:
        if "does not exist" in _message(error):
            return None, {}
        raise aws_error(error) from None
    status = str(found["StackStatus"])
    if status == "REVIEW_IN_PROGRESS":
        return status, {}
    body = cloudformation.get_template(StackName=stack_name, TemplateStage="Original")["TemplateBody"]
    return status, body if isinstance(body, dict) else json.loads(body)


def _wait_created(cloudformation: Any, stack_name: str, change_set_id: str) -> dict[str, Any]:
    started = time.monotonic()
    last = ""
    while True:
        description = _describe(cloudformation, change_set_id)
        status = str(description["Status"])
        if status != last:
            say(f"{stack_name}: change set {status}")
            last = status
        if status in ("CREATE_COMPLETE", "FAILED"):
            return description
        if time.monotonic() - started > CREATE_TIMEOUT_SECONDS:
            raise StackRejected(
                f"{stack_name}: the change set is still {status} after {CREATE_TIMEOUT_SECONDS:.0f}s"
            )
        time.sleep(POLL_SECONDS)


def _describe(cloudformation: Any, change_set_id: str) -> dict[str, Any]:
    """The whole description of a change set (its changes come in pages)."""
    description: dict[str, Any] = cloudformation.describe_change_set(ChangeSetName=change_set_id)
    changes = list(description.get("Changes", []))
    token = description.get("NextToken")
    while token:
        page = cloudformation.describe_change_set(ChangeSetName=change_set_id, NextToken=token)
        changes += page.get("Changes", [])
        token = page.get("NextToken")
    description["Changes"] = changes
    return description


def _message(error: ClientError) -> str:
    detail = error.response.get("Error", {})
    return f"{detail.get('Code', '')}: {detail.get('Message', '')}"


# --- --execute-plan and --discard-plan ---------------------------------------------------------------------


def _checked(
    config: MarketplaceConfig, config_path: Path, plan_file: Path, doing: str
) -> tuple[Plan, Credentials]:
    """The plan and the credentials to run it with, refused (nothing changed) when they do not match."""
    plan = Plan.read(plan_file)
    settings = config.deployment_settings
    if plan.environment != settings.environment:
        raise PlanError(
            f"{plan_file.name} is a plan for environment {plan.environment}, not {settings.environment}; "
            f"nothing was {doing}"
        )
    credentials = Credentials.check(
        plan.region,
        {
            f"the plan in {plan_file.name} (environment {plan.environment})": plan.account,
            f"environment {settings.environment}'s deploymentSettings.account": settings.account or "",
        },
    )
    return plan, credentials


def execute_plan(
    config: MarketplaceConfig,
    config_path: Path,
    plan_file: Path,
    *,
    require_approval: bool = False,
    yes: bool = False,
    ask: Callable[[str], str] | None = None,
) -> tuple[Plan, dict[str, dict[str, str]]]:
    """Execute the plan's change sets in order, following each stack to its end; the plan and the stacks'
    outputs."""
    plan, credentials = _checked(config, config_path, plan_file, "executed")
    if not config_path.exists() or config_hash(config_path) != plan.config_sha256:
        raise PlanError(
            f"{config_path} changed since the plan was made ({plan.created}), so the plan may not be what "
            "the config now says; nothing was executed. Run --plan again and review it"
        )
    for item in plan.stacks:
        if item.change_set is None:
            continue
        try:
            description = credentials.cloudformation(item).describe_change_set(ChangeSetName=item.change_set)
        except ClientError as error:
            raise PlanError(
                f"{item.stack}: the plan's change set is gone ({_message(error)}); nothing was executed. "
                "Run --plan again"
            ) from None
        if (
            description.get("ExecutionStatus") != "AVAILABLE"
            or description.get("Status") != "CREATE_COMPLETE"
        ):
            raise PlanError(
                f"{item.stack}: the plan's change set can no longer be executed (status "
                f"{description.get('Status')}, execution status {description.get('ExecutionStatus')}: the "
                "stack changed since the plan); nothing was executed. Run --plan again"
            )
    security = [(item.stack, line) for item in plan.stacks for line in item.security]
    if require_approval and security:
        print("\nThe plan makes IAM/security changes:")
        for stack, line in security:
            print(f"  {stack}: {line}")
        if not yes:
            if ask is None:
                raise PlanError(
                    "--require-approval: the plan has IAM/security changes (listed above) and there is no "
                    "terminal to ask; nothing was executed. Review them, then run --execute-plan "
                    "--require-approval --yes"
                )
            if ask("Execute these changes? [y/N] ").strip().lower() not in ("y", "yes"):
                raise PlanError(
                    "not approved: nothing was executed; the plan is kept (--discard-plan drops it)"
                )
    outputs: dict[str, dict[str, str]] = {}
    for index, item in enumerate(plan.stacks):
        cloudformation = credentials.cloudformation(item)
        if item.change_set is not None:
            say(f"{item.stack}: executing change set ({item.change_set_type})")
            try:
                earlier = _event_ids(cloudformation, item.stack)
                cloudformation.execute_change_set(ChangeSetName=item.change_set)
                _follow(cloudformation, item.stack, earlier)
                if item.termination_protection:  # as cdk deploy does, once the stack exists
                    cloudformation.update_termination_protection(
                        StackName=item.stack, EnableTerminationProtection=True
                    )
            except (StackRejected, ClientError) as error:
                rest = [later for later in plan.stacks[index + 1 :] if later.change_set]
                if rest:
                    say(
                        "Deleting the plan's change sets not executed: "
                        + ", ".join(later.stack for later in rest)
                    )
                    _discard(rest, credentials)
                plan_file.unlink(missing_ok=True)
                if isinstance(error, ClientError):
                    raise StackRejected(f"{item.stack}: CloudFormation refused: {_message(error)}") from None
                raise
        else:
            say(f"{item.stack}: no changes")
        (stack,) = cloudformation.describe_stacks(StackName=item.stack)["Stacks"]
        outputs[item.stack] = {str(o["OutputKey"]): str(o["OutputValue"]) for o in stack.get("Outputs", [])}
    plan_file.unlink(missing_ok=True)
    say(f"Plan executed; {plan_file.name} removed")
    return plan, outputs


def _event_ids(cloudformation: Any, stack_name: str) -> set[str]:
    """The stack's latest events before it changes (so that only the events of this change are shown)."""
    try:
        events = cloudformation.describe_stack_events(StackName=stack_name)["StackEvents"]
    except ClientError:
        return set()
    return {str(event["EventId"]) for event in events}


def _follow(cloudformation: Any, stack_name: str, earlier: set[str]) -> None:
    """Print the stack's events until it has ended; StackRejected when it ended failed."""
    seen = set(earlier)
    failures: list[str] = []
    while True:
        (stack,) = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
        events = cloudformation.describe_stack_events(StackName=stack_name)["StackEvents"]
        for event in reversed(events):
            if event["EventId"] in seen:
                continue
            seen.add(event["EventId"])
            reason = event.get("ResourceStatusReason") or ""
            line = f"{event['LogicalResourceId']} {event['ResourceType']} {event['ResourceStatus']}"
            say(f"{stack_name}: {line}" + (f" ({reason})" if reason else ""))
            if event["ResourceStatus"].endswith("_FAILED") and reason:
                failures.append(f"{event['LogicalResourceId']}: {reason}")
        status = str(stack["StackStatus"])
        if not status.endswith("_IN_PROGRESS"):
            break
        time.sleep(POLL_SECONDS)
    if status not in ("CREATE_COMPLETE", "UPDATE_COMPLETE", "IMPORT_COMPLETE"):
        reason = failures[0] if failures else stack.get("StackStatusReason", "")
        raise StackRejected(f"{stack_name} ended {status}: {reason}")
    say(f"{stack_name}: {status}")


def discard_plan(config: MarketplaceConfig, config_path: Path, plan_file: Path) -> None:
    """Delete the plan's change sets, the empty stacks its CREATE change sets left, and the plan file."""
    plan, credentials = _checked(config, config_path, plan_file, "deleted")
    _discard(list(plan.stacks), credentials)
    plan_file.unlink(missing_ok=True)
    say(f"Plan discarded; {plan_file.name} removed")


def _discard(stacks: Iterable[PlannedStack], credentials: Credentials) -> None:
    for item in stacks:
        if item.change_set is None:
            continue
        cloudformation = credentials.cloudformation(item)
        try:
            cloudformation.describe_change_set(ChangeSetName=item.change_set)
        except ClientError:
            say(f"{item.stack}: its change set is already gone")
        else:
            cloudformation.delete_change_set(ChangeSetName=item.change_set)
            say(f"{item.stack}: change set deleted")
        if item.change_set_type == "CREATE":
            status, _ = _deployed(cloudformation, item.stack)
            if status == "REVIEW_IN_PROGRESS":
                cloudformation.delete_stack(StackName=item.stack)
                say(f"{item.stack}: the empty stack the change set had made is deleted")
