"""What the reconciliation function takes: the schedule's event, or what --reconcile sends, nothing else."""

from __future__ import annotations

from typing import Any

import pytest

from handlers.reconcile import BadRequest, options


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        ({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}, (False, False)),
        ({}, (False, False)),
        ({"full": True}, (True, False)),
        ({"dryRun": True}, (False, True)),
        ({"full": True, "dryRun": True}, (True, True)),
    ],
)
def test_the_schedule_and_reconcile_options_are_read(
    event: dict[str, Any], expected: tuple[bool, bool]
) -> None:
    assert options(event) == expected


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({"ful": True}, "unknown option(s) ful: expected full, dryRun"),
        ({"full": "yes"}, "full: true or false"),
        ({"dryRun": 1}, "dryRun: true or false"),
        ([], "the payload must be a JSON object"),
    ],
)
def test_anything_else_is_refused_naming_what_is_wrong(event: Any, message: str) -> None:
    with pytest.raises(BadRequest) as refused:
        options(event)
    assert str(refused.value) == message
