"""Webhook delivery: the queue of due messages, its dead-letter queue, and the function that sends them.

The steps that end a job (and a redelivery) put one message per due webhook on
the queue. The delivery function takes it, makes one attempt, and on failure
makes the same message visible again when the retry schedule's next attempt is
due; a message given up on goes to the dead-letter queue, whose alarm is in
``monitoring``. Each key's signing secret is in Secrets Manager, under one
prefix that only the delivery function may read.
"""

from __future__ import annotations

import math

from aws_cdk import ArnFormat, Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from clipline.adapters.aws.sqs_webhook_queue import MAX_VISIBILITY_SECONDS
from clipline.domain.webhooks import JITTER_FRACTION, RetrySchedule
from clipline.settings import Settings

from . import acknowledge, dead_letter_queue
from .config import StageConfig
from .functions import env_name

# SQS keeps a message at most 14 days, counted from when it was first sent: the whole schedule must fit.
QUEUE_RETENTION = Duration.days(14)
# Receives of one message before SQS dead-letters it: every attempt and every long wait is one, so this sits
# well above what the schedule takes (checked below); it catches only messages the function cannot handle.
MAX_RECEIVE_COUNT = 100
# A message becomes visible again only after the function that took it has certainly stopped.
VISIBILITY_MARGIN = Duration.seconds(30)


def retry_schedule_of(config: StageConfig) -> RetrySchedule:
    """The schedule the stage's functions will read: its ``settings`` override, or the runtime default."""
    text = config.settings.get("webhook_retry_schedule", Settings.model_fields["webhook_retry_schedule"].default)
    return RetrySchedule.parse(str(text))


def receives_needed(schedule: RetrySchedule) -> int:
    """How many times one message is received over a whole schedule: an attempt each, plus the long waits'
    (a delay, stretched by its jitter, longer than one visibility timeout can hold)."""
    waits = sum(
        max(math.ceil(delay * (1 + JITTER_FRACTION) / MAX_VISIBILITY_SECONDS) - 1, 0) for delay in schedule.delays_seconds
    )
    return len(schedule.delays_seconds) + 1 + waits


class WebhookDelivery(Construct):
    """The webhook queue and the delivery function's wiring; ``announce_from`` lets a function queue messages."""

    def __init__(
        self, scope: Construct, construct_id: str, *, config: StageConfig, deliverer: lambda_.Function
    ) -> None:
        super().__init__(scope, construct_id)
        self.check_schedule(retry_schedule_of(config))
        self.secrets_prefix = f"{config.name_prefix}/webhook-secrets"
        self.dead_letter_queue = dead_letter_queue(self, "DeadLetters")
        deliverer_timeout = (deliverer.timeout or Duration.seconds(3)).to_seconds()
        self.queue = sqs.Queue(
            self,
            "Deliveries",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=QUEUE_RETENTION,
            visibility_timeout=Duration.seconds(deliverer_timeout + VISIBILITY_MARGIN.to_seconds()),
            dead_letter_queue=sqs.DeadLetterQueue(queue=self.dead_letter_queue, max_receive_count=MAX_RECEIVE_COUNT),
        )
        deliverer.add_event_source(
            event_sources.SqsEventSource(
                self.queue,
                # One message per invocation: each is one POST, retried on its own schedule.
                batch_size=1,
                max_concurrency=config.webhook_max_concurrency,
                report_batch_item_failures=True,
            )
        )
        # The deliverer postpones and deletes what it received (the event source grants that); it never sends.
        deliverer.add_environment(env_name("webhook_queue_url"), self.queue.queue_url)
        deliverer.add_environment(env_name("webhook_dead_letter_queue_url"), self.dead_letter_queue.queue_url)
        deliverer.add_environment(env_name("webhook_secrets_prefix"), self.secrets_prefix)
        self.dead_letter_queue.grant_send_messages(deliverer)
        self._grant_secrets(deliverer)

    @staticmethod
    def check_schedule(schedule: RetrySchedule) -> None:
        """Refuse a schedule the queue could not carry to its end.

        Raises:
            ValueError: it outlasts SQS's retention, or takes more receives than the redrive policy allows.
        """
        # The jitter can stretch the schedule by its fraction; a day to spare beyond that.
        longest = schedule.total.total_seconds() * (1 + JITTER_FRACTION) + Duration.days(1).to_seconds()
        if longest >= QUEUE_RETENTION.to_seconds():
            raise ValueError("webhook_retry_schedule is longer than SQS keeps a message (14 days, less a day to spare)")
        # Twice what it takes: a receive the function fails outright (a store unreachable) counts too.
        if receives_needed(schedule) * 2 > MAX_RECEIVE_COUNT:
            raise ValueError(f"webhook_retry_schedule has too many attempts for {MAX_RECEIVE_COUNT} receives")

    def announce_from(self, function: lambda_.Function) -> None:
        """Let ``function`` queue due messages: the steps that end a job, and the redelivery route."""
        function.add_environment(env_name("webhook_queue_url"), self.queue.queue_url)
        self.queue.grant_send_messages(function)

    def _grant_secrets(self, deliverer: lambda_.Function) -> None:
        # Secrets are made per API key at first use, so the statement covers the prefix; no other role has it.
        # PutSecretValue is not here: a rotation is the operator's, through the CLI.
        secrets = Stack.of(self).format_arn(
            service="secretsmanager",
            resource="secret",
            resource_name=f"{self.secrets_prefix}/*",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        deliverer.add_to_role_policy(
            iam.PolicyStatement(
                actions=["secretsmanager:GetSecretValue", "secretsmanager:CreateSecret"], resources=[secrets]
            )
        )
        # The one wildcard is the API key id at the end of each secret's name, under this stage's prefix.
        acknowledge(
            deliverer,
            "AwsSolutions-IAM5",
            "The delivery function reads and makes the webhook signing secrets, one per API key id, named at "
            "run time under this stage's prefix only.",
            f"Resource::arn:<AWS::Partition>:secretsmanager:<AWS::Region>:<AWS::AccountId>:secret:{self.secrets_prefix}/*",
        )
