"""What onboarding costs on top of the AWS calls it must make.

1. Cold import: each handler module imported in a fresh interpreter, against a bare `import boto3` in the
   same run (goal <= 1.3x): a Lambda cold start pays this on every new execution environment.
2. Warm requests: one buyer's fulfillment POST + state GET + registration POST through the real handlers,
   against the floor of the same DynamoDB calls made directly with boto3 (goal <= 1.2x). DynamoDB is moto's
   server on 127.0.0.1 (real HTTP); ResolveCustomer is answered in-process on both sides, so the figure is
   the handlers' own overhead.

    .venv/bin/python bench/registration.py [--runs N] [--requests N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# The handlers it times run in fresh interpreters with this checkout's packages first on their path.
IMPORT_PATH = os.pathsep.join([str(PROJECT_ROOT), str(PROJECT_ROOT / "lambda")])


def import_seconds(statement: str, runs: int) -> float:
    env = {**os.environ, "PYTHONPATH": IMPORT_PATH, "POWERTOOLS_TRACE_DISABLED": "true"}
    env.update(
        {
            "POWERTOOLS_SERVICE_NAME": "bench",
            "POWERTOOLS_METRICS_NAMESPACE": "Bench",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
    )
    code = f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
    samples = []
    for _ in range(runs):
        result = subprocess.run(  # noqa: S603
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        samples.append(float(result.stdout.strip().splitlines()[-1]))
    return statistics.median(samples)


def cold_imports(runs: int) -> None:
    baseline = import_seconds("import boto3", runs)
    print(f"cold import, median of {runs} fresh interpreters:")
    print(f"  import boto3 (baseline)        {baseline * 1000:7.1f} ms")
    for module in ("handlers.fulfillment", "handlers.registration"):
        seconds = import_seconds(f"import {module}", runs)
        print(
            f"  import {module:<23} {seconds * 1000:7.1f} ms  ratio {seconds / baseline:4.2f}  (goal <= 1.3)"
        )


def timed(function: Callable[[], None], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def warm_requests(requests: int) -> None:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    os.environ.update(
        {
            "AWS_ENDPOINT_URL_DYNAMODB": f"http://{host}:{port}",
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "us-east-1",
            "POWERTOOLS_SERVICE_NAME": "bench",
            "POWERTOOLS_METRICS_NAMESPACE": "Bench",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_LOG_LEVEL": "WARNING",
        }
    )
    try:
        _warm_requests(requests)
    finally:
        server.stop()


def _warm_requests(requests: int) -> None:
    import io
    import json
    from contextlib import redirect_stdout

    import boto3 as aws

    from handlers import fulfillment, registration
    from marketplace_saas import wiring
    from marketplace_saas.models import BuyerIdentity
    from marketplace_saas.onboarding import Onboarding
    from marketplace_saas.settings import ListingSettings
    from marketplace_saas.store import PendingRegistrations, Subscribers
    from tests.support.events import FakeLambdaContext, fulfillment_post, register_post, registration_get

    client = aws.client("dynamodb")
    client.create_table(
        TableName="subscribers",
        KeySchema=[
            {"AttributeName": "customerAWSAccountId", "KeyType": "HASH"},
            {"AttributeName": "subscriptionKey", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "customerAWSAccountId", "AttributeType": "S"},
            {"AttributeName": "subscriptionKey", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    client.create_table(
        TableName="registrations",
        KeySchema=[{"AttributeName": "registrationKey", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "registrationKey", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb = aws.resource("dynamodb")
    subscribers_table = dynamodb.Table("subscribers")
    registrations_table = dynamodb.Table("registrations")
    counter = iter(range(10**9))

    class Marketplace:
        def resolve_customer(self, token: str) -> BuyerIdentity:
            return BuyerIdentity(token, "PROD_BENCH", f"arn:aws:license-manager::1:license:l-{token}", None)

        def entitlements(self, identity: BuyerIdentity, *, legacy: bool) -> list[object]:
            return []

    settings = ListingSettings("bench", "PROD_BENCH", "subscription", False, "subscribers", "registrations")
    wiring.use(
        Onboarding(
            settings,
            Marketplace(),  # type: ignore[arg-type]
            PendingRegistrations(registrations_table),
            Subscribers(subscribers_table, legacy=False),
        )
    )
    context = FakeLambdaContext()
    details = {
        "companyName": "Acme",
        "contactPerson": "Jane Doe",
        "contactEmail": "jane@example.com",
        "contactPhone": "+1 555 010 2030",
    }

    def through_handlers() -> None:
        account = f"{next(counter):012d}"
        with redirect_stdout(io.StringIO()):  # the handlers' metrics lines
            arrived = fulfillment.handler(fulfillment_post(account), context)
            cookie = arrived["multiValueHeaders"]["Set-Cookie"][0].split(";")[0]
            registration.handler(registration_get(cookie), context)
            done = registration.handler(register_post(details, cookie), context)
        assert done["statusCode"] == 201, done

    def direct_calls() -> None:
        # The same DynamoDB requests the handlers make, with the same clients, and nothing else.
        account = f"{next(counter):012d}"
        key = {"customerAWSAccountId": account, "subscriptionKey": f"arn:l-{account}"}
        registrations_table.put_item(
            Item={"registrationKey": account, "customerAWSAccountId": account, "expiresAt": 1},
            ConditionExpression="attribute_not_exists(registrationKey)",
        )
        registrations_table.get_item(Key={"registrationKey": account}, ConsistentRead=True)
        subscribers_table.get_item(Key=key, ConsistentRead=True)
        registrations_table.get_item(Key={"registrationKey": account}, ConsistentRead=True)
        subscribers_table.get_item(Key=key, ConsistentRead=True)
        subscribers_table.update_item(
            Key=key,
            UpdateExpression="SET companyName = :c, contactEmail = :e, registrationDate = :d",
            ConditionExpression="attribute_not_exists(registrationDate)",
            ExpressionAttributeValues={
                ":c": "Acme",
                ":e": "jane@example.com",
                ":d": "2026-11-23T00:00:00+00:00",
            },
            ReturnValues="ALL_NEW",
        )

    for function in (through_handlers, direct_calls):  # warm both paths
        timed(function, 20)
    # Interleave the two so machine noise hits both alike.
    handler_samples, floor_samples = [], []
    for _ in range(requests):
        handler_samples.append(timed(through_handlers, 1))
        floor_samples.append(timed(direct_calls, 1))
    handler_time, floor_time = statistics.median(handler_samples), statistics.median(floor_samples)
    print(f"warm buyer journey (fulfillment + state + register), median of {requests}:")
    print(f"  same DynamoDB calls, direct    {floor_time * 1000:7.2f} ms")
    ratio = handler_time / floor_time
    print(
        f"  through the handlers           {handler_time * 1000:7.2f} ms  ratio {ratio:4.2f}  (goal <= 1.2)"
    )
    print(json.dumps({"handlers_ms": handler_time * 1000, "floor_ms": floor_time * 1000}))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=7, help="fresh interpreters per import measurement")
    parser.add_argument("--requests", type=int, default=200, help="warm journeys measured per path")
    args = parser.parse_args()
    cold_imports(args.runs)
    warm_requests(args.requests)


if __name__ == "__main__":
    main()
