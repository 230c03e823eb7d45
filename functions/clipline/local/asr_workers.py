"""Local mode's ASR workers: threads that drain the ASR queue like Lambda's SQS event source mapping.

Each thread long-polls the queue for one message, hands it to the same handler
the AWS worker Lambda runs, in the same SQS event shape, and deletes it unless
the handler reported it as a batch item failure. Undeleted messages come back
after the visibility timeout and end in the dead-letter queue, as in AWS.
"""

from __future__ import annotations

import threading
from typing import Any

from ..observability import logger
from ..workflow import ASR_WORKER_HANDLER
from . import lambda_runtime

_POLL_SECONDS = 1


def sqs_event(message: dict, queue_arn: str) -> dict:
    """The Lambda event for one received SQS message."""
    return {
        "Records": [
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": message.get("Attributes", {}),
                "messageAttributes": message.get("MessageAttributes", {}),
                "md5OfBody": message.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": lambda_runtime.LOCAL_REGION,
            }
        ]
    }


class AsrWorkers:
    """``count`` threads consuming ``queue_url`` until stopped."""

    def __init__(self, sqs_client: Any, queue_url: str, count: int) -> None:
        self._sqs = sqs_client
        self._queue_url = queue_url
        self._queue_arn = sqs_client.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._consume, name=f"asr-worker-{n}", daemon=True) for n in range(count)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self, timeout_seconds: float = 5.0) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout_seconds)

    def _consume(self) -> None:
        while not self._stop.is_set():
            try:
                messages = self._sqs.receive_message(
                    QueueUrl=self._queue_url,
                    MaxNumberOfMessages=1,
                    WaitTimeSeconds=_POLL_SECONDS,
                    AttributeNames=["All"],
                ).get("Messages", [])
            except Exception:  # noqa: BLE001 - the engine is stopping, or hiccuped; poll again
                if self._stop.wait(_POLL_SECONDS):
                    return
                continue
            for message in messages:
                self._handle(message)

    def _handle(self, message: dict) -> None:
        try:
            response = lambda_runtime.invoke(ASR_WORKER_HANDLER, sqs_event(message, self._queue_arn))
        except Exception:  # noqa: BLE001 - as Lambda does: the message stays and is redelivered
            logger.exception("the ASR worker failed on a message", extra={"messageId": message["MessageId"]})
            return
        if response.get("batchItemFailures"):
            return
        self._sqs.delete_message(QueueUrl=self._queue_url, ReceiptHandle=message["ReceiptHandle"])
