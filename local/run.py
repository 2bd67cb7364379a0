"""`./deploy-marketplace.sh --local`: every enabled listing's stack on this machine, no AWS account.

    synthesize (the same templates a deploy uses) → moto's server (DynamoDB and the other AWS services)
    → the Marketplace emulator, seeded from the config → tables, queues, buses and rules created from
    the templates
    → one gateway process per listing (CloudFront + API Gateway + Lambda)
    → a stand-in of each listing's stack in the local CloudFormation → URLs and .local/endpoints.json

Everything binds to 127.0.0.1. Ctrl-C or SIGTERM stops every process this started.

The data is kept in .local/state/ across restarts (`--fresh` deletes it first): DynamoDB's writes, replayed
at start (local/aws_server.py), and the emulator's state (local/marketplace_emulator/persistence.py). Both are
written before the call that made the change is answered, so a stop of any kind, SIGKILL included, loses
nothing a caller was told had happened: a metering run cut short is finished by the next one, and the
emulator bills a record it already billed only once.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any

import boto3

from local import cloudformation
from local.console import serve as console_server
from local.gateway import GatewaySpec
from local.stack_template import ListingTemplate, load
from stacks.config import MarketplaceConfig, read_config, selected_environment
from stacks.naming import ListingNames
from stacks.page_config import page_config

PROJECT_ROOT = Path(__file__).resolve().parent.parent
STATE_DIR = PROJECT_ROOT / ".local"
# What local mode keeps across restarts.
KEPT_DIR = STATE_DIR / "state"


@dataclass(frozen=True)
class KeptState:
    """Where one environment's data is kept across starts: the default environment's in .local/state/,
    another's in .local/state-<environment>/, so that environments never mix their subscribers or bills."""

    directory: Path

    @classmethod
    def of(cls, environment: str, default_environment: str) -> KeptState:
        if environment == default_environment:
            return cls(KEPT_DIR)
        return cls(STATE_DIR / f"state-{environment}")

    @property
    def dynamodb_journal(self) -> Path:
        return self.directory / "dynamodb.jsonl"

    @property
    def emulator_state(self) -> Path:
        return self.directory / "emulator.pickle"


DEFAULT_PORT = 8300
STARTUP_TIMEOUT_SECONDS = 30
# Local AWS services answer to any credentials; these keep a seller's real ones out of local mode.
LOCAL_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_SESSION_TOKEN": "local",
}
MOTO_SERVICES = (
    "DYNAMODB",
    "SQS",
    "EVENTBRIDGE",
    "SNS",
    "S3",
    "STS",
    "CLOUDWATCH",
    "SCHEDULER",
    "CLOUDFORMATION",
    "SSM",
)
# AWS Marketplace sends its EventBridge events and SNS notifications in this region.
MARKETPLACE_REGION = "us-east-1"
MARKETPLACE_SERVICES = (
    "MARKETPLACE_METERING",
    "MARKETPLACE_ENTITLEMENT_SERVICE",
    "MARKETPLACE_CATALOG",
    "MARKETPLACE_AGREEMENT",
)


class LocalModeError(Exception):
    """Local mode cannot start; the message says why and what to do."""


def say(message: str) -> None:
    print(f"==> {message}", file=sys.stderr, flush=True)


@dataclass
class Processes:
    """Every child process local mode started, stopped together."""

    running: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    def start(self, name: str, command: Sequence[str], env: dict[str, str], log: IO[bytes]) -> None:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and modules
            list(command),
            cwd=PROJECT_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        self.running.append((name, process))

    def check(self) -> None:
        for name, process in self.running:
            if process.poll() is not None:
                raise LocalModeError(
                    f"{name} stopped unexpectedly (exit code {process.returncode}); see .local/*.log"
                )

    def stop(self) -> None:
        for _, process in self.running:
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + 5
        for _, process in self.running:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.running.clear()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def ensure_port_free(port: int, what: str) -> None:
    """Refuses a port another program listens on. A port whose last connections are still in TIME_WAIT
    (for a minute after local mode stopped) is free: the servers bind with SO_REUSEADDR, so the probe
    does too."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            raise LocalModeError(
                f"port {port} (for {what}) is already in use on 127.0.0.1; choose other ports with --port N "
                f"(listings use N, N+1, ...)"
            ) from None


def wait_until_up(url: str, name: str, processes: Processes) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        processes.check()
        try:
            with urllib.request.urlopen(url, timeout=1):  # noqa: S310 - our own loopback URL
                return
        except urllib.error.HTTPError:
            return  # it answered
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    raise LocalModeError(f"{name} did not start within {STARTUP_TIMEOUT_SECONDS}s; see .local/*.log")


@contextlib.contextmanager
def single_instance() -> Iterator[None]:
    STATE_DIR.mkdir(exist_ok=True)
    lock_file = (STATE_DIR / "run.lock").open("a+")
    try:
        fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock_file.seek(0)
        owner = lock_file.read().strip() or "unknown"
        lock_file.close()
        raise LocalModeError(
            f"local mode is already running (process {owner}); stop it with Ctrl-C, or use its URLs in "
            ".local/endpoints.json"
        ) from None
    lock_file.seek(0)
    lock_file.truncate()
    lock_file.write(str(os.getpid()))
    lock_file.flush()
    try:
        yield
    finally:
        (STATE_DIR / "endpoints.json").unlink(missing_ok=True)
        lock_file.close()


def synthesize(config_path: Path, paths: Sequence[str]) -> dict[str, ListingTemplate]:
    """The same templates a deploy uses, written by a child process (local/synth.py) so that the CDK's
    Node.js runtime ends with it instead of staying alive beside the servers."""
    say("Synthesizing the listing stacks")
    result = subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "local.synth", str(config_path), *paths],
        cwd=PROJECT_ROOT,
        env=child_environment({}),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    if result.returncode != 0:
        detail = result.stderr.strip()[-4000:]
        raise LocalModeError(
            f"synthesizing the listing stacks failed (exit code {result.returncode}):\n{detail}"
        )
    files: dict[str, str] = json.loads(result.stdout.strip().splitlines()[-1])
    return {path: load(Path(file)) for path, file in files.items()}


def local_aws_environment(region: str, moto_url: str, emulator_url: str) -> dict[str, str]:
    env = {
        **LOCAL_CREDENTIALS,
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
        # No X-Ray daemon runs locally.
        "POWERTOOLS_TRACE_DISABLED": "true",
        "AWS_XRAY_SDK_ENABLED": "false",
    }
    env.update({f"AWS_ENDPOINT_URL_{service}": moto_url for service in MOTO_SERVICES})
    env.update({f"AWS_ENDPOINT_URL_{service}": emulator_url for service in MARKETPLACE_SERVICES})
    return env


def child_environment(extra: dict[str, str]) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    env.update(extra)
    env["PYTHONPATH"] = os.pathsep.join([str(PROJECT_ROOT), str(PROJECT_ROOT / "lambda")])
    env["PYTHONUNBUFFERED"] = "1"
    return env


def create_tables(templates: dict[str, ListingTemplate], aws_env: dict[str, str]) -> None:
    """The templates' tables; a table kept from an earlier start stays as it is, with its items."""
    dynamodb = _client("dynamodb", aws_env)
    existing = set(dynamodb.list_tables()["TableNames"])
    for template in templates.values():
        for table in template.tables:
            if table.create_request["TableName"] in existing:
                continue
            dynamodb.create_table(**table.create_request)
            if table.ttl_attribute:
                dynamodb.update_time_to_live(
                    TableName=table.create_request["TableName"],
                    TimeToLiveSpecification={"AttributeName": table.ttl_attribute, "Enabled": True},
                )


def _client(service: str, aws_env: dict[str, str], region: str | None = None) -> Any:
    return boto3.client(
        service,  # type: ignore[call-overload]
        # The variable is named after the service id: `events` is EventBridge.
        endpoint_url=aws_env[f"AWS_ENDPOINT_URL_{'EVENTBRIDGE' if service == 'events' else service.upper()}"],
        region_name=region or aws_env["AWS_DEFAULT_REGION"],
        aws_access_key_id=aws_env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=aws_env["AWS_SECRET_ACCESS_KEY"],
    )


def create_messaging(templates: dict[str, ListingTemplate], aws_env: dict[str, str]) -> None:
    """Queues (with their dead-letter queues), event buses, rules and SNS subscriptions, as templated.

    Rules on the default bus are created in us-east-1, where AWS Marketplace sends its events (a listing in
    another region receives them through its forwarding stack in the cloud).
    """
    sqs = _client("sqs", aws_env)
    listing_events = _client("events", aws_env)
    marketplace_events = _client("events", aws_env, MARKETPLACE_REGION)
    sns = _client("sns", aws_env, MARKETPLACE_REGION)
    for template in templates.values():
        arns: dict[str, str] = {}
        # Dead-letter queues first: the queues that use them name their ARNs.
        for queue in sorted(template.queues.values(), key=lambda q: q.dead_letter_queue is not None):
            attributes = dict(queue.attributes)
            if queue.dead_letter_queue:
                attributes["RedrivePolicy"] = json.dumps(
                    {
                        "deadLetterTargetArn": arns[queue.dead_letter_queue],
                        "maxReceiveCount": queue.max_receive_count,
                    }
                )
            url = sqs.create_queue(QueueName=queue.name, Attributes=attributes)["QueueUrl"]
            arns[queue.logical_id] = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
                "Attributes"
            ]["QueueArn"]
        for bus in template.event_buses:
            listing_events.create_event_bus(Name=bus)
        for rule in template.rules:
            client = marketplace_events if rule.event_bus == "default" else listing_events
            name = f"{template.stack_name}-{rule.name}"[:64]
            client.put_rule(Name=name, EventBusName=rule.event_bus, EventPattern=json.dumps(rule.pattern))
            client.put_targets(
                Rule=name, EventBusName=rule.event_bus, Targets=[{"Id": "queue", "Arn": arns[rule.queue]}]
            )
        for subscription in template.topic_subscriptions:
            # Locally the topic lives in the local account under its own name; the emulator publishes to it.
            topic = sns.create_topic(Name=subscription.topic_arn.rsplit(":", 1)[1])["TopicArn"]
            sns.subscribe(
                TopicArn=topic,
                Protocol="sqs",
                Endpoint=arns[subscription.queue],
                Attributes={"RawMessageDelivery": str(subscription.raw).lower()},
            )


def publish_stacks(
    templates: dict[str, ListingTemplate], endpoints: dict[str, Any], aws_env: dict[str, str]
) -> None:
    """Each listing's stack, visible to `aws cloudformation list-stacks` and `describe-stacks`."""
    client = _client("cloudformation", aws_env)
    try:
        for path, template in templates.items():
            listing = endpoints["listings"][path]
            urls = {
                "WebsiteUrl": listing["siteUrl"],
                "FulfillmentUrl": listing["fulfillmentUrl"],
                "ApiUrl": listing["apiUrl"],
            }
            cloudformation.publish(client, template, urls)
        cloudformation.retire_others(client, [template.stack_name for template in templates.values()])
    except cloudformation.StandInError as error:
        raise LocalModeError(f"the local CloudFormation: {error}") from None


def seed_emulator(emulator_url: str, config: MarketplaceConfig, paths: Sequence[str]) -> None:
    for listing in config.enabled_listings:
        if listing.path not in paths:
            continue
        body = json.dumps(
            {
                "productCode": listing.product_code,
                "dimensions": [dimension.name for dimension in listing.dimensions],
                "pricingModel": listing.pricing_model.value,
                "legacy": listing.legacy,
            }
        ).encode()
        request = urllib.request.Request(  # noqa: S310 - our own loopback URL
            f"{emulator_url}/_emulator/products",
            data=body,
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5):  # noqa: S310
            pass


def forget_kept_data(kept: KeptState) -> None:
    """`--fresh`: what earlier starts kept is deleted, so this one starts empty."""
    for file in (kept.dynamodb_journal, kept.emulator_state):
        file.unlink(missing_ok=True)


def describe_kept_data(
    config: MarketplaceConfig,
    paths: Sequence[str],
    aws_env: dict[str, str],
    emulator_url: str,
    kept: KeptState,
) -> str:
    """What this start kept from earlier ones, in a line (or that it starts empty)."""
    dynamodb = _client("dynamodb", aws_env)
    subscribers = registered = usage = 0
    for path in paths:
        names = ListingNames(config.deployment_settings.name_prefix, path)
        items = _scan(dynamodb, names.subscribers_table)
        subscribers += len(items)
        registered += sum(1 for item in items if "registrationDate" in item)
        usage += len(_scan(dynamodb, names.metering_table))
    with urllib.request.urlopen(f"{emulator_url}/_emulator/metering", timeout=5) as answer:  # noqa: S310
        billed = len(json.loads(answer.read())["records"])
    where = kept.directory.relative_to(PROJECT_ROOT)
    if not (subscribers or usage or billed):
        return f"Starting empty (what happens now is kept in {where}/ for the next start)"
    return (
        f"Kept {subscribers} subscriber(s) ({registered} registered), {usage} usage record(s) and {billed} "
        f"billed record(s) from {where}/ (--fresh starts empty)"
    )


def _scan(dynamodb: Any, table: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for page in dynamodb.get_paginator("scan").paginate(TableName=table):
        items += page["Items"]
    return items


def run(
    config_path: Path, paths: Sequence[str], port: int | None, metering_seconds: float, fresh: bool = False
) -> None:
    every_environment = read_config(config_path)
    config = every_environment.for_environment(selected_environment())
    environment = config.deployment_settings.environment
    kept = KeptState.of(environment, every_environment.deployment_settings.environment)
    first_port = port or DEFAULT_PORT
    ports = {path: first_port + index for index, path in enumerate(paths)}
    for path, listing_port in ports.items():
        ensure_port_free(listing_port, f"listing {path}")
    console_port = first_port + len(paths)
    ensure_port_free(console_port, "the local console")
    region = config.deployment_settings.region

    with single_instance():
        kept.directory.mkdir(parents=True, exist_ok=True)
        if fresh:
            forget_kept_data(kept)
        templates = synthesize(config_path, paths)
        processes = Processes()
        console: ThreadingHTTPServer | None = None
        logs: list[IO[bytes]] = []

        def log(name: str) -> IO[bytes]:
            handle = (STATE_DIR / f"{name}.log").open("wb")
            logs.append(handle)
            return handle

        def on_terminate(signum: int, _frame: object) -> None:
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, on_terminate)
        try:
            moto_port, emulator_port = free_port(), free_port()
            moto_url = f"http://127.0.0.1:{moto_port}"
            emulator_url = f"http://127.0.0.1:{emulator_port}"
            say(f"Starting the local AWS services (moto) on {moto_url}")
            base_env = child_environment(LOCAL_CREDENTIALS | {"AWS_DEFAULT_REGION": region})
            processes.start(
                "moto",
                [
                    sys.executable,
                    "-m",
                    "local.aws_server",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(moto_port),
                    "--journal",
                    str(kept.dynamodb_journal),
                ],
                base_env,
                log("moto"),
            )
            say(f"Starting the AWS Marketplace emulator on {emulator_url}")
            processes.start(
                "the Marketplace emulator",
                [
                    sys.executable,
                    "-m",
                    "local.marketplace_emulator",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(emulator_port),
                    "--eventbridge-endpoint",
                    moto_url,
                    "--sns-endpoint",
                    moto_url,
                    "--state-file",
                    str(kept.emulator_state),
                ],
                base_env,
                log("emulator"),
            )
            wait_until_up(f"{moto_url}/moto-api/", "moto", processes)
            wait_until_up(f"{emulator_url}/_emulator/health", "the Marketplace emulator", processes)
            aws_env = local_aws_environment(region, moto_url, emulator_url)
            say("Creating the tables, queues, event buses and rules from the templates")
            create_tables(templates, aws_env)
            create_messaging(templates, aws_env)
            seed_emulator(emulator_url, config, paths)
            say(describe_kept_data(config, paths, aws_env, emulator_url, kept))

            endpoints: dict[str, Any] = {
                # Who wrote the file: a local mode that was killed leaves it behind (a clean stop removes it).
                "pid": os.getpid(),
                "environment": environment,
                "emulator": {"url": emulator_url},
                "aws": {"url": moto_url},
                "meteringSeconds": metering_seconds,
                "listings": {},
            }
            for path, template in templates.items():
                listing = config.listing_by_path(path)
                assert listing is not None  # selected paths come from the config
                spec = GatewaySpec(
                    listing_path=path,
                    port=ports[path],
                    template=STATE_DIR / "cdk.out" / f"{template.stack_name}.template.json",
                    site_root=PROJECT_ROOT / "site",
                    page_config=page_config(listing),
                    aws_environment=aws_env,
                    schedule_seconds=metering_seconds,
                )
                spec_file = STATE_DIR / f"gateway-{path}.json"
                spec.write(spec_file)
                say(f"Starting {path} on http://127.0.0.1:{ports[path]}/")
                processes.start(
                    f"the gateway of {path}",
                    [sys.executable, "-m", "local.gateway", "--spec", str(spec_file)],
                    child_environment({}),
                    log(f"gateway-{path}"),
                )
                site_url = f"http://127.0.0.1:{ports[path]}/"
                names = ListingNames(config.deployment_settings.name_prefix, path)
                endpoints["listings"][path] = {
                    "productCode": listing.product_code,
                    "siteUrl": site_url,
                    "fulfillmentUrl": f"{site_url}marketplace/fulfillment",
                    "apiUrl": f"{site_url}api/",
                    # API Gateway's own endpoint, as the stack output UsageApiUrl
                    "usageApiUrl": f"{site_url}live/api/usage",
                    "tables": {"subscribers": names.subscribers_table, "metering": names.metering_table},
                }
            for path in templates:
                wait_until_up(endpoints["listings"][path]["siteUrl"], f"the gateway of {path}", processes)
            publish_stacks(templates, endpoints, aws_env)
            endpoints["consoleUrl"] = f"http://127.0.0.1:{console_port}/"
            console = console_server(console_port, endpoints, aws_env)
            threading.Thread(target=console.serve_forever, name="console", daemon=True).start()
            (STATE_DIR / "endpoints.json").write_text(json.dumps(endpoints, indent=2) + "\n")
            print_endpoints(endpoints)
            while True:
                processes.check()
                time.sleep(0.5)
        except KeyboardInterrupt:
            say("Stopping local mode")
        finally:
            if console is not None:
                console.shutdown()
                console.server_close()
            processes.stop()
            for handle in logs:
                handle.close()


def print_endpoints(endpoints: dict[str, Any]) -> None:
    print(f"\nLocal mode is running environment {endpoints['environment']} (Ctrl-C to stop).\n")
    rows = [("Listing", "Page", "Fulfillment URL")]
    rows += [(path, item["siteUrl"], item["fulfillmentUrl"]) for path, item in endpoints["listings"].items()]
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    for index, row in enumerate(rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
        if index == 0:
            print("  ".join("-" * width for width in widths))
    print(f"\nMarketplace emulator: {endpoints['emulator']['url']}  (admin API /_emulator/: local/README.md)")
    print(f"Local AWS services:   {endpoints['aws']['url']}  (aws ... --endpoint-url: tables and stacks)")
    print(f"Console (play a buyer, see subscribers and billing): {endpoints['consoleUrl']}")
    print(f"The metering job runs every {endpoints['meteringSeconds']:g} s (--metering-interval).")
    print("Endpoints for scripts: .local/endpoints.json; logs: .local/*.log\n", flush=True)


def main(
    config_path: Path,
    paths: Sequence[str],
    *,
    port: int | None = None,
    metering_seconds: float = 60,
    fresh: bool = False,
) -> None:
    """Entry point used by `operations.cli` (which has validated the config and the selection)."""
    try:
        run(config_path, paths, port, metering_seconds, fresh)
    except LocalModeError as error:
        raise SystemExit(f"error: {error}") from None
