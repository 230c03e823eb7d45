"""Webhook delivery: answers the webhook queue, one message per invocation.

The SQS event source mapping (batch size 1, partial batch responses) calls it with
a message the step that ended the job (or a redelivery) queued. A failed attempt
makes the same message visible again when the schedule's next attempt is due, and
reports it as a batch item failure so SQS keeps it; a message given up on is put
in the dead-letter queue, whose alarm tells the operator. A message this function
cannot handle at all (malformed, or the stores unreachable) is also a batch item
failure, retried by SQS and dead-lettered by the queue's redrive policy.
"""

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from ..adapters.aws.sqs_webhook_queue import SqsWebhookQueue, WebhookQueueMessage
from ..api.schemas import job_view_document
from ..composition import services
from ..domain.use_cases import deliver_webhook
from ..observability import lambda_logging, log_context, logger, tracer

_RECORD_LOG_KEYS = ("correlationId", "jobId", "messageId")


class _AttemptAgainLater(Exception):
    """The message stays in the queue, to come back when its next attempt is due."""


def _handle_record(record: SQSRecord) -> None:
    logger.thread_safe_remove_keys(_RECORD_LOG_KEYS)
    message = WebhookQueueMessage.model_validate_json(record.body)
    log_context(jobId=message.job_id, messageId=message.message_id)
    built = services()
    queue = built.webhook_queue
    assert isinstance(queue, SqsWebhookQueue), "the stack gives the delivery function the webhook queue"
    outcome = deliver_webhook(built, message.job_id, message.message_id, job_view_document, message.round)
    job = outcome.job
    if job is not None:
        log_context(correlationId=job.correlation_id)
    logger.info(
        f"webhook {outcome.outcome}",
        extra={"status": outcome.last_status, "retryInSeconds": outcome.retry_in_seconds},
    )
    if outcome.outcome in ("retrying", "waiting"):
        queue.postpone(record.receipt_handle, outcome.retry_in_seconds or 0)
        raise _AttemptAgainLater(f"next attempt in {outcome.retry_in_seconds:.0f}s")
    if outcome.outcome == "failed":
        queue.dead_letter(record.body)


@lambda_logging(stage="webhook")
@tracer.capture_lambda_handler
def lambda_handler(event: dict, context: object) -> dict:
    # A retry that waits is a batch item failure, not an error of the function: with one message per
    # batch, Powertools would otherwise raise, and every scheduled retry would count in Errors.
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    return process_partial_response(event=event, record_handler=_handle_record, processor=processor, context=context)
