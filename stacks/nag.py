"""Acknowledging cdk-nag findings: each acknowledgement names its finding and says why it is right *here*."""

from __future__ import annotations

from aws_cdk import Acknowledgment, Validations
from constructs import IConstruct


def acknowledge(scope: IConstruct, reasons: dict[str, str]) -> None:
    """Acknowledge findings on `scope` and everything inside it.

    Ids are bare rule ids (`Serverless-LambdaDLQ`), or rule ids with the finding for rules that report
    several per resource (`AwsSolutions-IAM5[Resource::*]`): those must be acknowledged one by one.
    """
    Validations.of(scope).acknowledge(
        *(Acknowledgment(id=rule, reason=reason) for rule, reason in reasons.items())
    )
