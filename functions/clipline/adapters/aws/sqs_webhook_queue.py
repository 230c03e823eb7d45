"""The AWS webhook queue: one SQS message per due webhook message, taken by the delivery function.

A retry is the same SQS message made visible again later (its visibility timeout
changed to the wait), so the queue holds one message per round at any time.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, Field

from ...domain.errors import ServiceUnavailableError

# SQS refuses a visibility that ends more than 12 hours after the message was received. The function
# changes it within its 60 s of the receipt, so five minutes short of that always fits; a longer wait
# is made of several, each ending in a "waiting" look.
MAX_VISIBILITY_SECONDS = 12 * 3600 - 300


class WebhookQueueMessage(BaseModel):
    """Ids only: the body and the secret are read by the delivery function, so neither is in the queue."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    job_id: str = Field(alias="jobId")
    message_id: str = Field(alias="messageId")
    round: int = 0


class SqsWebhookQueue:
    def __init__(self, client: Any, queue_url: str, dead_letter_queue_url: str = "") -> None:
        self._client = client
        self._queue_url = queue_url
        self._dead_letter_queue_url = dead_letter_queue_url

    def announce(self, job_id: str, message_id: str, round: int) -> None:
        body = WebhookQueueMessage(job_id=job_id, message_id=message_id, round=round).model_dump_json(by_alias=True)
        self._call("send_message", f"could not queue the webhook of job {job_id}", QueueUrl=self._queue_url, MessageBody=body)

    def postpone(self, receipt_handle: str, seconds: float) -> None:
        """Make a received message visible again after ``seconds`` (at most MAX_VISIBILITY_SECONDS)."""
        timeout = min(max(int(seconds + 0.999), 0), MAX_VISIBILITY_SECONDS)
        self._call(
            "change_message_visibility",
            "could not postpone a webhook message",
            QueueUrl=self._queue_url,
            ReceiptHandle=receipt_handle,
            VisibilityTimeout=timeout,
        )

    def dead_letter(self, body: str) -> None:
        """Keep a message that was given up on in the dead-letter queue, whose alarm tells the operator."""
        self._call(
            "send_message", "could not dead-letter a webhook message", QueueUrl=self._dead_letter_queue_url, MessageBody=body
        )

    def _call(self, operation: str, failure: str, **arguments: Any) -> None:
        try:
            getattr(self._client, operation)(**arguments)
        except (ClientError, BotoCoreError) as error:
            raise ServiceUnavailableError(f"{failure}: {error}") from error
