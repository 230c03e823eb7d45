"""Local mode's ASR workers: threads that drain the ASR queue like Lambda's SQS event source mapping.

A receiver thread takes each request as soon as it arrives and hands it to one of
the worker threads, which runs the same handler the AWS worker Lambda runs, with
the same SQS event shape. In AWS the event source mapping scales out and picks a
message up at once; here a request may wait for a free worker, and the Transcribe
state's HeartbeatSeconds counts from the moment it was queued, so the receiver
sends heartbeats for waiting requests. Otherwise a second job behind a long
transcription would be declared dead before any worker looked at it.

A message is deleted unless the handler reported it as a batch item failure;
undeleted messages come back after the visibility timeout and end in the
dead-letter queue, as in AWS.
"""

from __future__ import annotations

import queue
import threading
from typing import Any

from pydantic import ValidationError

from ..observability import logger
from ..workflow import ASR_WORKER_HANDLER
from ..workflow.payloads import AsrRequest
from . import lambda_runtime

_POLL_SECONDS = 1


def _job_keys(message: dict) -> dict:
    """The job's log keys from a message body, when it is the JSON the Transcribe state sends."""
    try:
        request = AsrRequest.model_validate_json(message["Body"])
    except ValidationError:
        return {}
    return {"jobId": request.job_id, "correlationId": request.correlation_id}


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


def _task_token(message: dict) -> str | None:
    try:
        return AsrRequest.model_validate_json(message["Body"]).task_token
    except ValidationError:
        return None  # the handler will refuse it; nothing to keep alive


class AsrWorkers:
    """A receiver and ``count`` worker threads on ``queue_url``, until stopped. No workers, no receiver."""

    def __init__(self, sqs_client: Any, stepfunctions_client: Any, queue_url: str, count: int, heartbeat_seconds: float) -> None:
        self._sqs = sqs_client
        self._stepfunctions = stepfunctions_client
        self._queue_url = queue_url
        self._queue_arn = sqs_client.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        # Waiting requests get three beats per HeartbeatSeconds, as busy ones do.
        self._beat_interval = min(float(_POLL_SECONDS), heartbeat_seconds / 3)
        self._stop = threading.Event()
        self._waiting: queue.Queue[dict] = queue.Queue()
        self._waiting_tokens: dict[str, str] = {}
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._work, name=f"asr-worker-{n}", daemon=True) for n in range(count)
        ]
        if count:
            self._threads.append(threading.Thread(target=self._receive, name="asr-receiver", daemon=True))

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self, timeout_seconds: float = 5.0) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout_seconds)

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                messages = self._sqs.receive_message(
                    QueueUrl=self._queue_url, MaxNumberOfMessages=10, AttributeNames=["All"]
                ).get("Messages", [])
            except Exception:  # noqa: BLE001 - the engine is stopping, or hiccuped; poll again
                messages = []
            if not messages:
                self._stop.wait(self._beat_interval)
            for message in messages:
                token = _task_token(message)
                if token is not None:
                    with self._lock:
                        self._waiting_tokens[message["MessageId"]] = token
                self._waiting.put(message)
            self._beat_for_waiting()

    def _beat_for_waiting(self) -> None:
        with self._lock:
            tokens = list(self._waiting_tokens.values())
        for token in tokens:
            try:
                self._stepfunctions.send_task_heartbeat(taskToken=token)
            except Exception:  # noqa: BLE001 - a task that no longer waits is dropped by the handler itself
                continue

    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                message = self._waiting.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                continue
            with self._lock:
                self._waiting_tokens.pop(message["MessageId"], None)
            try:
                self._handle(message)
            except Exception:  # noqa: BLE001 - as Lambda does: the message stays and is redelivered
                logger.exception(
                    "the ASR worker failed on a message",
                    extra={"messageId": message["MessageId"], **_job_keys(message)},
                )

    def _handle(self, message: dict) -> None:
        response = lambda_runtime.invoke(ASR_WORKER_HANDLER, sqs_event(message, self._queue_arn))
        if not response.get("batchItemFailures"):
            self._sqs.delete_message(QueueUrl=self._queue_url, ReceiptHandle=message["ReceiptHandle"])
