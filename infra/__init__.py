"""The CDK app's constructs, one per concern; ``stack.ClipStack`` composes them.

Infra reads clipline's data (the workflow's task table, the API routes, the
settings' key names, the metric catalog), never its runtime objects.
"""

from pathlib import Path

from aws_cdk import Acknowledgment, Validations
from constructs import IConstruct

REPO_ROOT = Path(__file__).resolve().parents[1]
# The Lambda code asset: the runtime package and nothing else of the repository.
FUNCTIONS_DIR = REPO_ROOT / "functions"
# Synth-time builds (the layers) live beside cdk.out, ignored by git and reused between synths.
BUILD_DIR = REPO_ROOT / "build"


def acknowledge(scope: IConstruct, rule: str, reason: str, *findings: str) -> None:
    """Acknowledge a cdk-nag rule on ``scope`` and everything under it, with the reason it does not apply.

    Rules that report several findings per resource (IAM4, IAM5) are acknowledged
    one finding at a time (``AwsSolutions-IAM5[Action::s3:GetObject*]``), so a
    new wildcard is still reported.
    """
    ids = [f"{rule}[{finding}]" for finding in findings] or [rule]
    Validations.of(scope).acknowledge(*(Acknowledgment(id=rule_id, reason=reason) for rule_id in ids))
