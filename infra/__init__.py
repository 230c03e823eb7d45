"""The CDK app's constructs, one per concern; ``stack.ClipStack`` composes them.

Infra reads clipline's data (the workflow's task table, the API routes, the
settings' key names, the metric catalog), never its runtime objects.
"""

from pathlib import Path

from typing import Any

from aws_cdk import Acknowledgment, Duration, Validations
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from constructs import Construct, IConstruct

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


# Long enough for someone to notice the alarm and replay what is kept.
DEAD_LETTER_RETENTION = Duration.days(14)


def dead_letter_queue(scope: Construct, construct_id: str) -> sqs.Queue:
    """A queue that keeps what could not be handled after every retry: encrypted, SSL only, kept 14 days."""
    return sqs.Queue(
        scope,
        construct_id,
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        retention_period=DEAD_LETTER_RETENTION,
    )


def private_bucket(scope: Construct, construct_id: str, **properties: Any) -> s3.Bucket:
    """A bucket no one reaches but by its grants: public access blocked, SSL only, encrypted with S3's keys."""
    return s3.Bucket(
        scope,
        construct_id,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        enforce_ssl=True,
        encryption=s3.BucketEncryption.S3_MANAGED,
        **properties,
    )
