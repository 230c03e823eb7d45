"""The job routes: create, list, read, result, cancel or delete, and webhook redelivery."""

from __future__ import annotations

import re
from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Header, Query

from ..composition import services
from ..domain import errors
from ..domain.job_listing import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from ..domain.jobs import JobStatus
from ..domain.use_cases import (
    NewJobRequest,
    cancel_or_delete_job,
    create_job,
    get_job,
    get_job_result,
    list_jobs,
    redeliver_webhook,
)
from ..observability import log_context, logger
from .app import POLL_AFTER_SECONDS, JobId, app, caller, checked_job_id, correlation_id, json_response
from .correlation import CORRELATION_HEADER
from .errors import CORRELATION_RESPONSE_HEADER, RETRY_AFTER_HEADER, error_responses
from .schemas import CreateJobBody, JobListView, JobView, ResultView, to_wire

_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")


@app.post(
    "/api/jobs",
    operation_id="createJob",
    summary="Create a clip job",
    description="Validates the request, stores the job and starts its pipeline. The job is returned at once "
    "(202); poll its status. With Idempotency-Key, a repeat of the same request returns the same job.",
    tags=["jobs"],
    responses={
        202: {
            "description": "The job, queued",
            "headers": {
                "Location": {"description": "The job's status URL", "schema": {"type": "string"}},
                **RETRY_AFTER_HEADER,
                **CORRELATION_RESPONSE_HEADER,
            },
            "content": {"application/json": {"model": JobView}},
            # Where to go next with the new job's id, for clients and tools that follow links.
            "links": {
                "GetJob": {"operationId": "getJob", "parameters": {"id": "$response.body#/id"}},
                "GetJobResult": {"operationId": "getJobResult", "parameters": {"id": "$response.body#/id"}},
            },
        },
        **error_responses(
            errors.MalformedJsonError,
            errors.ValidationFailedError,
            errors.InvalidTimecodeError,
            errors.InvalidTimeRangeError,
            errors.ClipTooLongError,
            errors.UnsupportedSourceUrlError,
            errors.SourceNotAllowedError,
            errors.InvalidSubtitlesError,
            errors.InvalidWebhookUrlError,
            errors.WebhookUrlNotAllowedError,
            errors.UnsupportedMediaTypeError,
            errors.IdempotencyKeyReusedError,
            errors.SourceUnreachableError,
            errors.UploadNotFoundError,
            errors.UploadIncompleteError,
            errors.UploadMismatchError,
            errors.UploadExpiredError,
            # Starting the job's execution failed; the job was not kept.
            errors.ServiceUnavailableError,
        ),
    },
)
def post_job(
    body: Annotated[CreateJobBody, Body()],
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description="1-255 visible ASCII characters; a repeat of the same request with the same key "
            "within 24 hours returns the same job",
            examples=["clip-2026-11-25-001"],
        ),
    ] = None,
) -> Response[dict]:
    if idempotency_key is not None and not _IDEMPOTENCY_KEY.fullmatch(idempotency_key):
        raise errors.ValidationFailedError("Idempotency-Key must be 1-255 visible ASCII characters")
    job = create_job(
        services(),
        NewJobRequest(
            source_url=body.source_url,
            start=body.start,
            end=body.end,
            transcribe=body.transcribe,
            language=body.language,
            retention_seconds=body.retention_seconds,
            accuracy=body.accuracy,
            burn_subtitles=body.burn_subtitles,
            subtitle_style=body.subtitle_style,
            subtitles_srt=body.subtitles.srt if body.subtitles else None,
            webhook_url=body.webhook_url,
            source_key=body.source_key,
        ),
        owner=caller(),
        correlation_id=correlation_id(),
        idempotency_key=idempotency_key,
    )
    log_context(jobId=job.id)
    logger.info("job accepted", extra={"status": job.status.value})
    # A replay may return a job that has already finished: nothing to wait for then.
    poll_after = {} if job.status.is_terminal else {"Retry-After": str(POLL_AFTER_SECONDS)}
    return json_response(202, to_wire(JobView.of(job)), Location=f"/api/jobs/{job.id}", **poll_after)


@app.get(
    "/api/jobs",
    operation_id="listJobs",
    summary="List your jobs",
    description="Your jobs, newest first, a page at a time: pass each page's nextCursor as cursor to get the next, "
    "until nextCursor is null. Jobs stay listed until they expire.",
    tags=["jobs"],
    responses={
        200: {
            "description": "A page of jobs",
            "headers": dict(CORRELATION_RESPONSE_HEADER),
            "content": {"application/json": {"model": JobListView}},
        },
        **error_responses(errors.InvalidCursorError),
    },
)
def get_jobs(
    status: Annotated[JobStatus | None, Query(description="Only jobs with this status")] = None,
    limit: Annotated[
        int, Query(ge=1, le=MAX_PAGE_SIZE, description=f"Jobs per page, at most {MAX_PAGE_SIZE}")
    ] = DEFAULT_PAGE_SIZE,
    cursor: Annotated[
        str | None, Query(max_length=256, description="The previous page's nextCursor, to go on from there")
    ] = None,
) -> Response[dict]:
    listing = list_jobs(services(), owner=caller(), status=status, limit=limit, cursor=cursor)
    return json_response(200, to_wire(JobListView.of(listing)))


@app.get(
    "/api/jobs/<id>",
    operation_id="getJob",
    summary="Get a job's status",
    description="Status, stage, progress 0-100 and the most recent events of one of your jobs.",
    tags=["jobs"],
    responses={
        200: {
            "description": "The job",
            "headers": dict(CORRELATION_RESPONSE_HEADER),
            "content": {"application/json": {"model": JobView}},
        },
        **error_responses(errors.JobNotFoundError),
    },
)
def get_job_status(id: JobId) -> Response[dict]:  # noqa: A002 - the route's parameter name
    job_id = checked_job_id(id)
    return json_response(200, to_wire(JobView.of(get_job(services(), job_id, owner=caller()))))


@app.get(
    "/api/jobs/<id>/result",
    operation_id="getJobResult",
    summary="Get signed links to a finished job's artifacts",
    description="Expiring links to the clip and, when asked for, the transcript files and the burned-in clip. "
    "404 for an unknown job, 409 while it runs or when it failed or was cancelled, 410 once it has expired or "
    "its artifacts were deleted.",
    tags=["jobs"],
    responses={
        200: {
            "description": "The artifacts, each with a signed link",
            "headers": dict(CORRELATION_RESPONSE_HEADER),
            "content": {"application/json": {"model": ResultView}},
        },
        **error_responses(
            errors.JobNotFoundError,
            errors.JobNotReadyError,
            errors.JobFailedError,
            errors.JobCancelledError,
            errors.JobDeletedError,
            errors.ResultExpiredError,
        ),
    },
)
def get_result(id: JobId) -> Response[dict]:  # noqa: A002 - the route's parameter name
    job_id = checked_job_id(id)
    return json_response(200, to_wire(ResultView.of(get_job_result(services(), job_id, owner=caller()))))


@app.post(
    "/api/jobs/<id>/webhook/redeliver",
    operation_id="redeliverWebhook",
    summary="Send an ended job's webhook again",
    description="Queues the job's job.succeeded, job.failed or job.cancelled message again, with the same webhook-id "
    "and body and a fresh retry schedule, whatever became of the last round. 409 while the job runs or when it has "
    "no webhook, 410 once the job was deleted.",
    tags=["jobs"],
    responses={
        202: {
            "description": "The job, its webhook pending again",
            "headers": dict(CORRELATION_RESPONSE_HEADER),
            "content": {"application/json": {"model": JobView}},
        },
        # 503: the queue could not take the message; the webhook is pending again, so call once more.
        **error_responses(
            errors.JobNotFoundError,
            errors.JobNotReadyError,
            errors.NoWebhookError,
            errors.JobDeletedError,
            errors.ServiceUnavailableError,
        ),
    },
)
def post_webhook_redelivery(id: JobId) -> Response[dict]:  # noqa: A002 - the route's parameter name
    job_id = checked_job_id(id)
    job = redeliver_webhook(services(), job_id, owner=caller())
    logger.info("webhook redelivery queued")
    return json_response(202, to_wire(JobView.of(job)))


@app.delete(
    "/api/jobs/<id>",
    operation_id="deleteJob",
    summary="Cancel a job, or delete an ended job's artifacts",
    description="A queued or running job is cancelled: its execution is stopped, its running ffmpeg or "
    "transcription ends, and what it stored is removed (202, the job as cancelled). An ended job's artifacts "
    "are deleted now; its record stays, as deleted, until it expires (204). Calling again answers 204.",
    tags=["jobs"],
    responses={
        202: {
            "description": "Cancelled: the job, now cancelled; a step in flight stops within seconds",
            "headers": dict(CORRELATION_RESPONSE_HEADER),
            "content": {"application/json": {"model": JobView}},
        },
        204: {
            "description": "Nothing left to stop: the ended job's artifacts are deleted, or it was cancelled before",
            "headers": dict(CORRELATION_RESPONSE_HEADER),
        },
        **error_responses(errors.JobNotFoundError),
    },
)
def delete_job(id: JobId) -> Response[dict | None]:  # noqa: A002 - the route's parameter name
    job_id = checked_job_id(id)
    removal = cancel_or_delete_job(services(), job_id, owner=caller())
    for warning in removal.warnings:
        logger.warning(warning)
    if removal.cancelled_now:
        logger.info("job cancelled", extra={"stage": removal.job.stage.value, "artifactsRemoved": removal.artifacts_removed})
        return json_response(202, to_wire(JobView.of(removal.job)))
    if removal.deleted_now:
        logger.info("job deleted", extra={"artifactsRemoved": removal.artifacts_removed})
    return Response(status_code=204, body=None, headers={CORRELATION_HEADER: correlation_id()})
