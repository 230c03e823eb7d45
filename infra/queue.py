"""The ASR queue the Transcribe state writes to, its dead-letter queue, and the worker that drains it."""

from __future__ import annotations

from aws_cdk import ArnFormat, Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from . import dead_letter_queue
from .config import StageConfig

# A message becomes visible again only after the worker that took it has certainly stopped.
VISIBILITY_MARGIN = Duration.seconds(60)


class AsrQueue(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, config: StageConfig, worker: lambda_.Function
    ) -> None:
        super().__init__(scope, construct_id)
        self.dead_letter_queue = dead_letter_queue(self, "DeadLetters")
        worker_timeout = worker.timeout or Duration.seconds(3)
        self.queue = sqs.Queue(
            self,
            "Requests",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            visibility_timeout=Duration.seconds(worker_timeout.to_seconds() + VISIBILITY_MARGIN.to_seconds()),
            dead_letter_queue=sqs.DeadLetterQueue(
                queue=self.dead_letter_queue, max_receive_count=config.asr_max_receive_count
            ),
        )
        worker.add_event_source(
            event_sources.SqsEventSource(
                self.queue,
                # One clip per invocation: a transcription can take most of the worker's 15 minutes.
                batch_size=1,
                max_concurrency=config.asr_max_concurrency,
                report_batch_item_failures=True,
            )
        )


def grant_asr_provider(worker: lambda_.IFunction, config: StageConfig) -> None:
    """What the stage's provider needs beyond the bucket.

    transcribe: Amazon Transcribe's job calls. openai: reading its key's secret.
    whisper runs inside the worker and needs nothing more.
    """
    if config.asr_provider == "openai":
        secretsmanager.Secret.from_secret_name_v2(worker, "OpenAiApiKey", config.openai_secret_name).grant_read(worker)
        return
    if config.asr_provider != "transcribe":
        return
    stack = Stack.of(worker)
    # Job names are made up per transcription, so the statement covers this account and region's jobs.
    jobs = stack.format_arn(
        service="transcribe", resource="transcription-job", resource_name="*", arn_format=ArnFormat.SLASH_RESOURCE_NAME
    )
    worker.add_to_role_policy(
        iam.PolicyStatement(
            actions=[
                "transcribe:StartTranscriptionJob",
                "transcribe:GetTranscriptionJob",
                "transcribe:DeleteTranscriptionJob",
            ],
            resources=[jobs],
        )
    )
