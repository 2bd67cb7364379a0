"""The AWS error code the store, the lifecycle and the metering job branch on."""

from __future__ import annotations

from botocore.exceptions import ClientError

from marketplace_saas.store import CONDITION_FAILED, error_code


def test_the_code_of_a_failed_call_is_read_from_its_response() -> None:
    failed = ClientError({"Error": {"Code": CONDITION_FAILED, "Message": "no"}}, "UpdateItem")
    assert error_code(failed) == "ConditionalCheckFailedException"


def test_a_response_without_a_code_has_a_code_that_matches_nothing_it_is_compared_with() -> None:
    assert error_code(ClientError({}, "UpdateItem")) == "UnknownError"
    assert error_code(ClientError({"Error": {"Message": "no"}}, "UpdateItem")) == "UnknownError"
