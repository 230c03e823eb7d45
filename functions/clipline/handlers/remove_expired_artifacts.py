"""Retention in AWS: deletes the files of jobs-table records that DynamoDB removes.

A DynamoDB Streams event source mapping on the jobs table (NEW_AND_OLD_IMAGES, partial
batch responses) calls it. It acts on REMOVE records only, whoever removed the item: TTL
expiry (``userIdentity`` is the DynamoDB service) and a delete by our own code alike,
because the use case deletes a folder only when no live record still refers to it.
Inserts and updates are ignored.

A record that cannot be handled is reported as a batch item failure; the stream then
retries from it, so records after it in the batch may run again, which is harmless.
"""

import json

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import (
    DynamoDBRecord,
    DynamoDBRecordEventName,
)

from ..composition import services
from ..domain.retention import remove_artifacts_of_expired_record
from ..observability import lambda_logging, log_context, logger, tracer

_TTL_IDENTITY = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
_RECORD_LOG_KEYS = ("sequenceNumber", "recordType", "removedBy", "jobId")


def _handle_record(record: DynamoDBRecord) -> None:
    # Removed first, so a failure is never logged under the previous record's job.
    logger.thread_safe_remove_keys(_RECORD_LOG_KEYS)
    if record.event_name is not DynamoDBRecordEventName.REMOVE:
        return
    item = record.dynamodb.old_image
    if not item:
        raise ValueError("a REMOVE record without its old image: the stream must carry old images")
    log_context(
        sequenceNumber=record.dynamodb.sequence_number,
        recordType=item.get("type"),
        removedBy="ttl" if record.user_identity == _TTL_IDENTITY else "delete",
    )
    document = json.loads(item["document"]) if "document" in item else None
    log_context(jobId=item.get("jobId") or (document or {}).get("id"))
    deleted = remove_artifacts_of_expired_record(services(), item.get("type"), document, item.get("pk"))
    logger.info("removed record's files deleted", extra={"objectsDeleted": deleted})


@lambda_logging(stage="retention")
@tracer.capture_lambda_handler
def lambda_handler(event: dict, context: object) -> dict:
    # One processor per invocation: local mode runs several handlers in one process.
    # Given the logger, the processor logs each failed record with its traceback.
    processor = BatchProcessor(event_type=EventType.DynamoDBStreams, logger=logger)
    return process_partial_response(event=event, record_handler=_handle_record, processor=processor, context=context)
