"""Checks what went over the wire to and from the emulator against botocore's installed service models.

For every recorded call (see `EmulatorServer(record_calls=True)`):
- an accepted request (2xx) must fit the operation's input shape: only modeled members, the right types,
  required members present, lengths, ranges, patterns and enums respected (checked here, by a validator
  written independently of the emulator's own), and pass botocore's own `ParamValidator`;
- its answer must parse with botocore's own parser for the protocol it went over, and hold only modeled
  members, with valid types, enums and limits;
- a refusal must be a 4xx (5xx only for a modeled fault) whose code botocore reads back from the body, and
  that code must be one the operation's model declares or one of the generic protocol errors; a request
  botocore's model refuses must never be accepted, and `SerializationException` is only for a body that
  cannot be read into the shape.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from functools import cache
from typing import Any

import botocore.session
import cbor2
from botocore.model import OperationModel, ServiceModel, Shape, StructureShape
from botocore.parsers import create_parser
from botocore.validate import ParamValidator

from local.marketplace_emulator.server import RecordedCall

SERVICES = {
    "AWSMPMeteringService": "meteringmarketplace",
    "AWSMPEntitlementService": "marketplace-entitlement",
    "AWSMPCommerceService_v20200301": "marketplace-agreement",
}
# Errors every AWS JSON 1.1 / rpc-v2-cbor service may answer, modeled or not, with their HTTP statuses.
GENERIC_ERRORS = {
    "SerializationException": {400},
    "ValidationException": {400},
    "MissingAuthenticationTokenException": {403},
    "UnknownOperationException": {400, 404},
    # The emulator's own answer to MeterUsage and RegisterUsage, which are not for SaaS products.
    "UnsupportedOperation": {400},
}
INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)


@cache
def service_model(target_prefix: str) -> ServiceModel:
    return botocore.session.get_session().get_service_model(SERVICES[target_prefix])


def operation_model(target: str) -> OperationModel | None:
    prefix, _, name = target.rpartition(".")
    if prefix not in SERVICES:
        return None
    model = service_model(prefix)
    return model.operation_model(name) if name in model.operation_names else None


def value_problems(shape: Shape, value: Any, path: str, protocol: str) -> list[str]:
    """Where `value` (as decoded from the wire) does not fit `shape`; empty when it does."""
    kind = shape.type_name
    where = path or shape.name
    problems: list[str] = []
    if kind == "structure":
        assert isinstance(shape, StructureShape)
        if not isinstance(value, dict):
            return [f"{where}: a structure must be an object, got {type(value).__name__}"]
        for name in value:
            if name not in shape.members:
                problems.append(f"{where}: {name!r} is not a member of {shape.name}")
        for name in shape.required_members:
            if value.get(name) is None:
                problems.append(f"{where}: required member {name!r} is missing")
        for name, item in value.items():
            if name in shape.members and item is not None:
                problems += value_problems(shape.members[name], item, f"{where}.{name}", protocol)
        return problems
    if kind == "list":
        if not isinstance(value, list):
            return [f"{where}: a list must be a list, got {type(value).__name__}"]
        problems += _bounds(shape, len(value), where, "length")
        for index, item in enumerate(value):
            problems += value_problems(shape.member, item, f"{where}[{index}]", protocol)  # type: ignore[attr-defined]
        return problems
    if kind == "map":
        if not isinstance(value, dict):
            return [f"{where}: a map must be an object, got {type(value).__name__}"]
        problems += _bounds(shape, len(value), where, "length")
        for key, item in value.items():
            problems += value_problems(shape.key, key, f"{where} key", protocol)  # type: ignore[attr-defined]
            problems += value_problems(shape.value, item, f"{where}.{key}", protocol)  # type: ignore[attr-defined]
        return problems
    if kind == "string":
        if not isinstance(value, str):
            return [f"{where}: a string must be a string, got {type(value).__name__}"]
        problems += _bounds(shape, len(value), where, "length")
        pattern = shape.metadata.get("pattern")
        if pattern is not None and not re.search(pattern, value):
            problems.append(f"{where}: {value!r} does not match the pattern {pattern}")
        if shape.enum and value not in shape.enum:
            problems.append(f"{where}: {value!r} is not one of {shape.enum}")
        return problems
    if kind in ("integer", "long"):
        if not isinstance(value, int) or isinstance(value, bool):
            return [f"{where}: an {kind} must be an integer, got {type(value).__name__}"]
        low, high = INT32 if kind == "integer" else INT64
        if not low <= value <= high:
            problems.append(f"{where}: {value} does not fit an {kind}")
        return problems + _bounds(shape, value, where, "value")
    if kind in ("double", "float"):
        if not isinstance(value, int | float) or isinstance(value, bool):
            return [f"{where}: a {kind} must be a number, got {type(value).__name__}"]
        return problems
    if kind == "boolean":
        return [] if isinstance(value, bool) else [f"{where}: a boolean must be a boolean, got {value!r}"]
    if kind == "timestamp":
        # AWS JSON 1.1: epoch seconds; rpc-v2-cbor: tag 1 (which cbor2 decodes to a datetime).
        expected: tuple[type, ...] = (int, float) if protocol == "json" else (datetime,)
        if isinstance(value, bool) or not isinstance(value, expected):
            return [f"{where}: a timestamp over {protocol} must be {expected}, got {type(value).__name__}"]
        return problems
    if kind == "blob":
        expected_blob = str if protocol == "json" else bytes
        if isinstance(value, expected_blob):
            return []
        return [f"{where}: a blob must be {expected_blob.__name__}, got {type(value).__name__}"]
    return [f"{where}: shape type {kind} is not checked by this validator"]


def _bounds(shape: Shape, size: int, where: str, what: str) -> list[str]:
    problems = []
    if "min" in shape.metadata and size < shape.metadata["min"]:
        problems.append(f"{where}: {what} {size} is below the minimum {shape.metadata['min']}")
    if "max" in shape.metadata and size > shape.metadata["max"]:
        problems.append(f"{where}: {what} {size} is above the maximum {shape.metadata['max']}")
    return problems


def as_params(shape: Shape, value: Any) -> Any:
    """The decoded wire value as boto3 parameters (epoch timestamps become datetimes)."""
    kind = shape.type_name
    if kind == "structure" and isinstance(value, dict):
        members = shape.members  # type: ignore[attr-defined]
        return {k: as_params(members[k], v) if k in members else v for k, v in value.items()}
    if kind == "list" and isinstance(value, list):
        return [as_params(shape.member, item) for item in value]  # type: ignore[attr-defined]
    if kind == "map" and isinstance(value, dict):
        return {k: as_params(shape.value, v) for k, v in value.items()}  # type: ignore[attr-defined]
    if kind == "timestamp" and isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    return value


def decode(protocol: str, body: bytes) -> Any:
    if protocol == "json":
        return json.loads(body.decode("utf-8")) if body else {}
    return cbor2.loads(body) if body else {}


def call_problems(call: RecordedCall) -> list[str]:
    """What is wrong with one recorded call, by the model; empty when nothing is."""
    label = f"{call.target} ({call.protocol}, {call.status})"
    problems: list[str] = []
    operation = operation_model(call.target)
    try:
        request: Any = decode(call.protocol, call.request_body)
        readable = True
    except (UnicodeDecodeError, ValueError, cbor2.CBORDecodeError):
        request, readable = None, False
    request_problems = (
        value_problems(operation.input_shape, request, "", call.protocol)
        if operation is not None and readable
        else ["unreadable or unknown operation"]
    )
    parser = create_parser(call.protocol)
    headers = {key.lower(): value for key, value in call.headers.items()}
    json_version = "1.1"
    if call.target.rpartition(".")[0] in SERVICES:
        json_version = service_model(call.target.rpartition(".")[0]).metadata.get("jsonVersion", "1.1")
    wanted_type = f"application/x-amz-json-{json_version}" if call.protocol == "json" else "application/cbor"
    if headers.get("content-type") != wanted_type:
        problems.append(f"{label}: Content-Type {headers.get('content-type')!r}, not {wanted_type}")
    if call.protocol == "smithy-rpc-v2-cbor" and headers.get("smithy-protocol") != "rpc-v2-cbor":
        problems.append(f"{label}: no Smithy-Protocol: rpc-v2-cbor header")
    response = {"status_code": call.status, "headers": headers, "body": call.body}

    if 200 <= call.status < 300:
        if operation is None:
            return [f"{label}: an operation the model does not have was answered"]
        problems += [f"{label}: accepted a request the model refuses: {p}" for p in request_problems]
        if not request_problems:
            report = ParamValidator().validate(
                as_params(operation.input_shape, request), operation.input_shape
            )
            if report.has_errors():
                problems.append(
                    f"{label}: botocore's ParamValidator refuses the request: {report.generate_report()}"
                )
        try:
            parser.parse(response, operation.output_shape)
        except Exception as error:
            problems.append(f"{label}: botocore cannot parse the answer: {error!r}")
        try:
            answer = decode(call.protocol, call.body)
        except ValueError as error:
            return [*problems, f"{label}: the answer is not {call.protocol}: {error}"]
        problems += [
            f"{label}: answer: {p}" for p in value_problems(operation.output_shape, answer, "", call.protocol)
        ]
        if call.target.endswith(".BatchMeterUsage") and not request_problems:
            problems += _echo_problems(label, request, answer)
        return problems

    # A refusal.
    try:
        parsed = parser.parse(response, None)
        code = parsed["Error"]["Code"]
    except Exception as error:
        return [*problems, f"{label}: botocore cannot parse the error: {error!r}"]
    try:
        body = decode(call.protocol, call.body)
    except ValueError:
        body = None
    modeled = {shape.name: shape for shape in operation.error_shapes} if operation is not None else {}
    # A modeled error may carry its shape's other members (the Agreement API's reason, fields, resourceId).
    members = {"__type", "message"} | (set(modeled[code].members) if code in modeled else set())
    if not isinstance(body, dict) or set(body) - members or not body.get("message"):
        problems.append(f"{label}: an error body holds __type, a message and modeled members, got {body!r}")
    elif code in modeled:
        detail = {key: value for key, value in body.items() if key != "__type"}
        problems += [f"{label}: error: {p}" for p in value_problems(modeled[code], detail, "", call.protocol)]
    if code in modeled:
        fault = modeled[code].metadata.get("fault", False)
        status = modeled[code].metadata.get("error", {}).get("httpStatusCode", 500 if fault else 400)
        if call.status != status:
            problems.append(f"{label}: {code} is answered with HTTP {status}, not {call.status}")
    elif code in GENERIC_ERRORS:
        if call.status not in GENERIC_ERRORS[code]:
            problems.append(
                f"{label}: {code} is answered with HTTP {GENERIC_ERRORS[code]}, not {call.status}"
            )
    elif operation is not None:
        problems.append(f"{label}: {code!r} is neither a modeled error of the operation nor a generic one")
    if call.status >= 500 and not (code in modeled and modeled[code].metadata.get("fault")):
        problems.append(f"{label}: a 5xx for something that is not a modeled fault ({code})")
    if code == "SerializationException" and readable and operation is not None:
        types_wrong = [p for p in request_problems if _is_type_problem(p)]
        if not types_wrong:
            problems.append(
                f"{label}: SerializationException for a request whose body fits the shape's types"
            )
    return problems


def _is_type_problem(problem: str) -> bool:
    return " must be " in problem or "is not a member of" in problem


def _echo_problems(label: str, request: dict[str, Any], answer: dict[str, Any]) -> list[str]:
    """BatchMeterUsage answers with the records it was sent: each once, in Results or UnprocessedRecords."""
    sent = [json.dumps(r, sort_keys=True, default=str) for r in request.get("UsageRecords", [])]
    returned = [json.dumps(r["UsageRecord"], sort_keys=True, default=str) for r in answer.get("Results", [])]
    returned += [json.dumps(r, sort_keys=True, default=str) for r in answer.get("UnprocessedRecords", [])]
    if sorted(sent) != sorted(returned):
        return [f"{label}: the answer does not return each record sent exactly once"]
    return []


def all_problems(calls: Iterable[RecordedCall]) -> list[str]:
    return [problem for call in calls for problem in call_problems(call)]
