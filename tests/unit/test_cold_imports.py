"""What each function loads when a new execution environment imports its handler (a cold start).

Each handler is imported in a fresh interpreter, as Lambda does, and the modules it left loaded are checked:
a buyer-facing function must not pay for what its first request does not use. (How long the imports take is
measured by bench/registration.py, not here.)
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.fresh_interpreter import run_probe

ROOT = Path(__file__).resolve().parents[2]
LAMBDA_LOCK = ROOT / "requirements" / "lambda.txt"

# Never in any function: the X-Ray SDK (traces come from Lambda's and API Gateway's active tracing).
NEVER = {"aws_xray_sdk", "wrapt"}
# The registration form's model: pydantic with e-mail validation, loaded with the first form.
FORM = {"marketplace_saas.registration_form", "email_validator"}
# Only the functions that run them: the metering job and the subscription lifecycle.
BACKGROUND = {"marketplace_saas.metering", "marketplace_saas.lifecycle"}
# A validation library: only the registration form uses one (usage is validated on the standard library).
VALIDATION = {"pydantic", "pydantic_core"}
NOT_AT_IMPORT = {
    "handlers.fulfillment": NEVER | FORM | BACKGROUND | VALIDATION | {"marketplace_saas.usage"},
    "handlers.registration": NEVER | FORM | BACKGROUND | VALIDATION | {"marketplace_saas.usage"},
    "handlers.usage": NEVER | FORM | BACKGROUND | VALIDATION,
    "handlers.lifecycle": NEVER | FORM,
    "handlers.metering_job": NEVER | FORM | VALIDATION,
}

_PROBE = """
import json, sys
import boto3
import {module}
print(json.dumps({{"modules": sorted(sys.modules), "session": boto3.DEFAULT_SESSION is not None}}))
"""


def _import_in_fresh_interpreter(module: str) -> tuple[set[str], bool]:
    report = run_probe(_PROBE.format(module=module))
    return set(report["modules"]), report["session"]


@pytest.mark.parametrize("module", sorted(NOT_AT_IMPORT))
def test_a_cold_start_loads_only_what_the_first_request_uses(module: str) -> None:
    loaded, session_made = _import_in_fresh_interpreter(module)
    assert module in loaded
    packages = {name.split(".")[0] for name in loaded}
    unwanted = sorted(name for name in NOT_AT_IMPORT[module] if name in loaded or name in packages)
    assert unwanted == [], f"importing {module} loads {unwanted}"
    # No AWS client (nor the session behind one) is made at import: the first request makes what it uses.
    assert not session_made


def test_the_registration_form_loads_with_the_first_form() -> None:
    """The registration function validates a form only after it imported the model on demand."""
    probe = (
        "import sys\n"
        "from handlers import registration\n"
        "assert 'email_validator' not in sys.modules\n"
        "request = registration._validate({'companyName': 'Acme', 'contactPerson': 'Jane Doe', "
        "'contactEmail': 'jane@example.com', 'contactPhone': '+1 555 010 2030'})\n"
        "assert request.contact_email == 'jane@example.com'\n"
        "assert 'email_validator' in sys.modules\n"
        "print('{}')\n"
    )
    run_probe(probe)


def test_the_usage_and_metering_functions_never_load_a_validation_library() -> None:
    """Not at import, nor with the requests they validate, nor with the code a metering run loads."""
    probe = (
        "import json, sys\n"
        "from decimal import Decimal\n"
        "import handlers.usage, handlers.metering_job\n"
        "import marketplace_saas.metering, marketplace_saas.usage\n"
        "from marketplace_saas.usage_request import InvalidUsage, UsageRecord\n"
        "body = {'customerAWSAccountId': '123456789012', 'dimension': 'users', 'quantity': Decimal('1.5'),\n"
        "        'time': '2026-11-23T10:15:00Z',\n"
        "        'allocations': [{'quantity': 1.5, 'tags': {'team': 'red'}}]}\n"
        "assert UsageRecord.validate(body).quantity == Decimal('1.5')\n"
        "try:\n"
        "    UsageRecord.validate({**body, 'quantity': -1})\n"
        "except InvalidUsage as error:\n"
        "    assert 'quantity' in handlers.usage._validation_message(error)\n"
        "print(json.dumps({'loaded': sorted({name.split('.')[0] for name in sys.modules})}))\n"
    )
    loaded = set(run_probe(probe)["loaded"])
    assert not loaded & VALIDATION


def test_the_functions_lock_has_no_x_ray_sdk() -> None:
    pinned = {
        line.split("==")[0].strip().lower() for line in LAMBDA_LOCK.read_text().splitlines() if "==" in line
    }
    assert "aws-lambda-powertools" in pinned
    assert not pinned & {"aws-xray-sdk", "wrapt"}
