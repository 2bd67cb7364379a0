"""What onboarding costs on top of the AWS calls it must make.

1. Cold import: each buyer-facing handler module imported in a fresh interpreter, against a bare
   `import boto3` in a fresh interpreter of the same round (paired runs: the ratio is the median of the
   rounds' ratios, so machine load that drifts during the run hits both sides alike). Goals: <= 1.3x for
   the fulfillment and registration functions, <= 1.5x for usage (it validates its
   requests on the standard library, and must not load pydantic).
   A Lambda cold start pays this on every new execution environment. Then, per handler, the top five
   import costs beyond boto3 (`-X importtime`, self time summed per top-level package), and what the
   registration function loads later, with the first form it validates.
2. Warm requests: one buyer's fulfillment POST + state GET + registration POST through the real handlers,
   against the floor of the same DynamoDB calls made directly with boto3 (goal <= 1.2x). DynamoDB is moto's
   server on 127.0.0.1 (real HTTP); ResolveCustomer is answered in-process on both sides, so the figure is
   the handlers' own overhead.

    .venv/bin/python bench/registration.py [--runs N] [--requests N]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# The handlers it times run in fresh interpreters with this checkout's packages first on their path.
IMPORT_PATH = os.pathsep.join([str(PROJECT_ROOT), str(PROJECT_ROOT / "lambda")])

BASELINE = "import boto3"
# The buyer-facing handlers and each one's goal, as a multiple of the baseline.
HANDLERS = {"handlers.fulfillment": 1.3, "handlers.registration": 1.3, "handlers.usage": 1.5}
# What the registration function imports on its first submitted form (not at cold start).
LATER = {"handlers.registration": "marketplace_saas.registration_form"}
TOP = 5


def _environment() -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": IMPORT_PATH,
        "POWERTOOLS_SERVICE_NAME": "bench",
        "POWERTOOLS_METRICS_NAMESPACE": "Bench",
        "AWS_DEFAULT_REGION": "us-east-1",
    }


def _seconds(statement: str, setup: str = "") -> float:
    """One fresh interpreter: how long `statement` takes to run in it, after `setup`."""
    code = f"{setup}\nimport time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
    result = subprocess.run(  # noqa: S603
        [sys.executable, "-c", code], env=_environment(), capture_output=True, text=True, check=True
    )
    return float(result.stdout.strip().splitlines()[-1])


def _top_costs(module: str, runs: int) -> list[tuple[str, float]]:
    """The packages that cost `import module` most beyond boto3: `-X importtime` self times, per top-level
    package, median over `runs` interpreters."""
    totals: dict[str, list[float]] = defaultdict(list)
    for _ in range(runs):
        result = subprocess.run(  # noqa: S603
            [sys.executable, "-X", "importtime", "-c", f"{BASELINE}; import {module}"],
            env=_environment(),
            capture_output=True,
            text=True,
            check=True,
        )
        per_package: dict[str, float] = defaultdict(float)
        after_baseline = False
        for line in result.stderr.splitlines():
            if not line.startswith("import time:") or "|" not in line:
                continue
            self_us, _, name = (part.strip() for part in line.removeprefix("import time:").split("|"))
            if not self_us.isdigit():
                continue  # the header line
            if after_baseline:
                per_package[name.split(".")[0]] += int(self_us) / 1e6
            elif name == "boto3":  # the baseline's own top-level entry comes last among its imports
                after_baseline = True
        for package, seconds in per_package.items():
            totals[package].append(seconds)
    medians = {
        package: statistics.median(values + [0.0] * (runs - len(values)))
        for package, values in totals.items()
    }
    return sorted(medians.items(), key=lambda item: -item[1])[:TOP]


def cold_imports(runs: int) -> None:
    for statement in (BASELINE, *(f"import {module}" for module in HANDLERS)):
        _seconds(statement)  # write the bytecode caches first: every round then reads them alike
    samples: dict[str, list[float]] = defaultdict(list)
    for round_number in range(runs):
        order = [BASELINE, *HANDLERS]
        shift = round_number % len(order)
        for name in order[shift:] + order[:shift]:
            samples[name].append(_seconds(name if name == BASELINE else f"import {name}"))
    baseline = samples[BASELINE]
    print(f"cold import, {runs} rounds of fresh interpreters (medians; ratio = median of paired ratios):")
    print(f"  {BASELINE + ' (baseline)':<30} {statistics.median(baseline) * 1000:7.1f} ms")
    for module, goal in HANDLERS.items():
        ratio = statistics.median(
            seconds / base for seconds, base in zip(samples[module], baseline, strict=True)
        )
        verdict = "met" if ratio <= goal else "NOT met"
        print(
            f"  import {module:<23} {statistics.median(samples[module]) * 1000:7.1f} ms  "
            f"ratio {ratio:4.2f}  (goal <= {goal}: {verdict})"
        )
    print(f"top {TOP} import costs beyond boto3 (-X importtime self time per package, median of 3):")
    for module in HANDLERS:
        costs = ", ".join(f"{package} {seconds * 1000:.1f} ms" for package, seconds in _top_costs(module, 3))
        print(f"  {module:<23} {costs}")
    for module, later in LATER.items():
        seconds = statistics.median(
            _seconds(f"import {later}", setup=f"import {module}") for _ in range(runs)
        )
        print(
            f"  {module} loads {later} with its first form: {seconds * 1000:.1f} ms then, not at cold start"
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
        # The DynamoDB requests the handlers make, with the same clients and the same content (checked
        # below), and nothing else.
        account = f"{next(counter):012d}"
        registration_key = hashlib.sha256(account.encode()).hexdigest()
        license_arn = f"arn:aws:license-manager::1:license:l-{account}"
        key = {"customerAWSAccountId": account, "subscriptionKey": f"l-{account}"}
        registrations_table.put_item(
            Item={
                "registrationKey": registration_key,
                "customerAWSAccountId": account,
                "productCode": "PROD_BENCH",
                "expiresAt": 1,
                "licenseArn": license_arn,
            },
            ConditionExpression="attribute_not_exists(registrationKey)",
        )
        registrations_table.get_item(Key={"registrationKey": registration_key}, ConsistentRead=True)
        subscribers_table.get_item(Key=key, ConsistentRead=True)
        registrations_table.get_item(Key={"registrationKey": registration_key}, ConsistentRead=True)
        subscribers_table.get_item(Key=key, ConsistentRead=True)
        values = {
            ":companyName": "Acme",
            ":contactPerson": "Jane Doe",
            ":contactEmail": "jane@example.com",
            ":contactPhone": "+1 555 010 2030",
            ":registrationDate": "2026-11-23T00:00:00+00:00",
            ":productCode": "PROD_BENCH",
            ":pending": "pending",
            ":entitlements": [],
            ":freeTrial": False,
            ":licenseArn": license_arn,
        }
        assignments = [f"{name[1:]} = {name}" for name in values if name not in (":pending",)]
        assignments.insert(6, "#status = if_not_exists(#status, :pending)")
        subscribers_table.update_item(
            Key=key,
            UpdateExpression="SET " + ", ".join(assignments),
            ConditionExpression="attribute_not_exists(registrationDate)",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues=values,
            ReturnValues="ALL_NEW",
        )

    same_requests(dynamodb.meta.client, through_handlers, direct_calls)
    for function in (through_handlers, direct_calls):  # warm both paths
        timed(function, 20)
    # Interleave the two so machine noise hits both alike.
    handler_samples, floor_samples = [], []
    for _ in range(requests):
        handler_samples.append(timed(through_handlers, 1))
        floor_samples.append(timed(direct_calls, 1))
    handler_time, floor_time = statistics.median(handler_samples), statistics.median(floor_samples)
    print(f"warm buyer journey (fulfillment + state + register), median of {requests}:")
    print(f"  same DynamoDB requests, direct {floor_time * 1000:7.2f} ms")
    ratio = handler_time / floor_time
    print(
        f"  through the handlers           {handler_time * 1000:7.2f} ms  ratio {ratio:4.2f}  (goal <= 1.2)"
    )
    print(json.dumps({"handlers_ms": handler_time * 1000, "floor_ms": floor_time * 1000}))


def _shape(operation: str, params: dict[str, Any]) -> tuple[Any, ...]:
    """A request without its values: the operation, its parameters, attribute names and expressions."""
    names = tuple(
        (name, tuple(sorted(value)) if isinstance(value, dict) else value if "Expression" in name else None)
        for name, value in sorted(params.items())
    )
    return operation, names


def same_requests(client: Any, *paths: Callable[[], None]) -> None:
    """Refuse to measure unless every path sends the same DynamoDB requests (values aside)."""
    seen: list[tuple[Any, ...]] = []

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        seen.append(_shape(model.name, params))

    client.meta.events.register("provide-client-params.dynamodb", record)
    shapes = []
    try:
        for path in paths:
            seen.clear()
            path()
            shapes.append(list(seen))
    finally:
        client.meta.events.unregister("provide-client-params.dynamodb", record)
    for shape in shapes[1:]:
        if shape != shapes[0]:
            raise SystemExit(f"the floor does not send the handlers' requests:\n{shapes[0]}\n{shape}")


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
