"""ASR worker: answers the Transcribe state's request from the ASR queue.

In AWS an SQS event source mapping (batch size 1, partial batch responses) calls
it; local mode's worker threads call it with the same event shape. Outcomes go to
the state machine by task token; only a message that could not be handled at all
(malformed, or the state machine unreachable) is reported back as a batch item
failure, so SQS redelivers it and finally moves it to the dead-letter queue.
"""

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from ..composition import services
from ..domain.transcription import transcribe_clip
from ..media import running_work
from ..observability import lambda_logging, log_context, logger, tracer
from ..workflow.payloads import AsrRequest


_RECORD_LOG_KEYS = ("correlationId", "jobId", "asrJobId")


def _handle_record(record: SQSRecord) -> None:
    # Removed first, so a record is never logged under the previous one's ids.
    logger.thread_safe_remove_keys(_RECORD_LOG_KEYS)
    request = AsrRequest.model_validate_json(record.body)
    log_context(correlationId=request.correlation_id, jobId=request.job_id)
    with running_work.working_for(request.job_id):
        report = transcribe_clip(services(), request.job_id, request.clip_key, request.language, request.task_token)
    log_context(asrJobId=report.asr_job_id)
    if report.unexpected is not None:
        logger.error("transcription failed", exc_info=report.unexpected, extra={"errorCode": report.error_code})
    elif report.outcome == "failed":
        logger.warning("transcription failed", extra={"errorCode": report.error_code})
    else:
        logger.info(f"transcription {report.outcome}", extra={"cacheHit": report.cache_hit})


@lambda_logging(stage="transcribe")
@tracer.capture_lambda_handler
def lambda_handler(event: dict, context: object) -> dict:
    # One processor per invocation: local mode runs several workers in one process.
    processor = BatchProcessor(event_type=EventType.SQS)
    return process_partial_response(event=event, record_handler=_handle_record, processor=processor, context=context)
