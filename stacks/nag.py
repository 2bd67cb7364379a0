"""Acknowledging cdk-nag findings: each acknowledgement names its rule and says why it is right *here*."""

from __future__ import annotations

from aws_cdk import Acknowledgment, Validations
from constructs import IConstruct


def acknowledge(scope: IConstruct, reasons: dict[str, str], *, with_children: bool = False) -> None:
    """Acknowledge rules (bare ids, e.g. `AwsSolutions-IAM5`) on `scope`, or on its whole subtree.

    A finding is reported on the CloudFormation resource, so acknowledging a construct made of several
    resources (a function with its role and policy) needs `with_children`.
    """
    targets = scope.node.find_all() if with_children else [scope]
    for target in targets:
        Validations.of(target).acknowledge(
            *(Acknowledgment(id=rule, reason=reason) for rule, reason in reasons.items())
        )
